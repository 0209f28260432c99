# The bus fixtures (a RabbitMQ namespace per test) are shared with the saga tests.
from ..bus.conftest import namespace, rabbit  # noqa: F401
