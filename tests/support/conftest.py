# The bus fixtures (a RabbitMQ namespace per test) are shared with the support e2e tests.
from ..bus.conftest import namespace, rabbit  # noqa: F401
