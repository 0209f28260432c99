-- wrk script for POST /v1/receipts: bench/http.py passes the JSON body (quantity 1) and the
-- bearer token through the environment, so this file holds no secrets and no test data.
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
