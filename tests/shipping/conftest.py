# The bus fixtures (a RabbitMQ namespace per test: rabbit, namespace, proxy) come from tests/conftest.py.
