"""The baseline: a bare Pyramid app on waitress with one route returning a small JSON object.

No security policy, tweens, database or schemas: what is left is the cost of waitress, WebOb
and Pyramid's router, which every one of our endpoints pays too. ``bench/http.py`` divides our
endpoints' requests/s by this one's.

    .venv/bin/python bench/bare_app.py --port 8080 --threads 4
"""

import os
import sys

# Run as a script, bench/ comes first on sys.path and bench/http.py would shadow the standard
# library's ``http`` package, which Pyramid imports: look in bench/ last.
sys.path.sort(key=lambda entry: os.path.abspath(entry or ".") == os.path.dirname(os.path.abspath(__file__)))

import argparse

import waitress
from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response
from pyramid.router import Router


def ping(request: Request) -> Response:
    return Response(json_body={"status": "ok", "service": "bare"}, content_type="application/json")


def make_app() -> Router:
    with Configurator() as config:
        config.add_route("ping", "/ping")
        config.add_view(ping, route_name="ping", request_method="GET")
    return config.make_wsgi_app()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=4, help="waitress worker threads")
    args = parser.parse_args()
    waitress.serve(make_app(), host=args.host, port=args.port, threads=args.threads, ident="bench-bare")


if __name__ == "__main__":
    main()
