"""Schemathesis hooks for the contract test (loaded through ``SCHEMATHESIS_HOOKS``).

Schemathesis's ``positive_data_acceptance`` check fails any 422 to a schema-valid
request. Ours is stricter where it matters and exact where that check cannot be: a
schema-valid request may be refused only for what the schema cannot state and the
operation documents —

* 401/403/404/409/429/503 when the operation documents them (state, credentials);
* 412 when the request sent an ``If-Match`` (a stale ETag is state);
* 422 only when every error points at a field the operation lists in
  ``x-state-dependent`` (a reference to something that must exist: a SKU, a cursor
  this API issued). A 422 on any other field is a rule the schema does not state.

Nothing else (400, 413, 415, or an undocumented status) is acceptable for a
schema-valid request.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from schemathesis.specs.openapi.checks import is_unexpected_http_status_case

_STATE = {401, 403, 404, 409, 429, 503}


def _matches(documented: str, pointer: Any) -> bool:
    """``/lines/*/sku`` matches ``/lines/3/sku``."""
    if not isinstance(pointer, str):
        return False
    want, got = documented.split("/"), pointer.split("/")
    return len(want) == len(got) and all(w in ("*", g) for w, g in zip(want, got, strict=True))


@schemathesis.check
def documented_rejections_only(ctx: Any, response: Any, case: Any) -> bool | None:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or is_unexpected_http_status_case(case):
        return None
    status = response.status_code
    if status < 400:
        return None
    raw = case.operation.definition.raw
    documented = {str(code) for code in raw.get("responses", {})}
    if status in _STATE and str(status) in documented:
        return None
    headers = {k.lower(): v for k, v in (case.headers or {}).items()}
    if status == 412 and "if-match" in headers:
        return None
    if status == 422:
        allowed = [*raw.get("x-state-dependent", ()), *raw.get("x-cross-field-rules", {})]
        try:
            errors = json.loads(response.content).get("errors", [])
        except ValueError:
            errors = []
        outside = [
            e.get("pointer") for e in errors if not any(_matches(p, e.get("pointer")) for p in allowed)
        ]
        if errors and not outside:
            return None
        raise AssertionError(
            f"A schema-valid request was refused with 422 on {outside or 'no field'}, which the "
            f"schema does not forbid (documented: {sorted(allowed) or 'none'}; headers {case.headers})"
        )
    raise AssertionError(f"A schema-valid request was refused with {status}")
