"""The request class every service's app builds its requests from.

``config.add_request_method(..., reify=True)`` would do the same, but Pyramid applies
such properties per request by making a new subclass of the request's class
(``InstancePropertyHelper.apply_properties`` calls ``type()`` every time): about a
fifth of a cheap read's instructions (bench/instructions.py). Properties declared on
the class cost nothing until used. pyramid_tm's ``request.tm`` is one of them:
``base_configurator`` does what pyramid_tm's includeme does but leaves that property
to this class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyramid.decorator import reify
from pyramid.request import Request

# At import, not in the property: a relative import inside a function runs the import
# machinery (and a Python-level property of the module's spec) on every read request.
from ..db import request_dbsession

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

    from ..outbox import Outbox


class LogisticsRequest(Request):  # type: ignore[misc]  # Pyramid ships no type hints
    @reify  # type: ignore[untyped-decorator]
    def tm(self) -> Any:  # transaction.TransactionManager (the package has no type hints)
        """The request's transaction manager (pyramid_tm's ``request.tm``; see app.py)."""
        from pyramid_tm import create_tm

        return create_tm(self)

    @reify  # type: ignore[untyped-decorator]
    def dbsession(self) -> Session | Connection:
        """A read connection (GET, HEAD, OPTIONS) or the request's transaction's session."""
        return request_dbsession(self)

    @reify  # type: ignore[untyped-decorator]
    def outbox(self) -> Outbox:
        """The outbox of the request's transaction, stamped with its request id."""
        from ..app import request_outbox

        return request_outbox(self)
