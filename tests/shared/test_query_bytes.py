"""Query strings that are not UTF-8 on every GET endpoint of every service.

The endpoints come from the registrations, so a new list endpoint is covered the day
it is added; every parameter its query schema declares gets every bad byte sequence.
"""

from __future__ import annotations

import re
import uuid

import pytest

from ..badinput import query_bytes, run_table

#: Values that route to the endpoint (the 400 comes before any lookup).
_PLACEHOLDERS = {"id": str(uuid.uuid4()), "priority": "high"}


def get_endpoints(client) -> list[tuple[str, tuple[str, ...]]]:
    from pyramid.interfaces import IRoutesMapper

    patterns = {r.name: r.pattern for r in client.registry.getUtility(IRoutesMapper).get_routes()}
    found = []
    for item in client.registry.introspector.get_category("views") or []:
        meta = getattr(item["introspectable"]["callable"], "__api__", None)
        if meta is None or meta.method != "GET":
            continue
        path = re.sub(
            r"\{([^}:]+)[^}]*\}", lambda m: _PLACEHOLDERS.get(m.group(1), "X-1"), patterns[meta.route]
        )
        names = (
            tuple(field.data_key or name for name, field in meta.query().fields.items()) if meta.query else ()
        )
        found.append((path, names))
    return sorted(found)


@pytest.mark.parametrize("service", ["inventory", "shipping", "support"])
def test_bytes_that_are_not_utf8_in_a_query_are_400_naming_the_parameter(service_client, service):
    client = service_client(service)
    endpoints = get_endpoints(client)
    assert any(names for _path, names in endpoints), "no list endpoint found"
    cases = [case for path, names in endpoints for case in query_bytes("GET", path, None, names)]
    run_table(client, [case.__class__(**{**case.__dict__, "content_type": None}) for case in cases])
