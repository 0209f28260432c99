"""IndexedRoutesMapper matches exactly what Pyramid's RoutesMapper matches: the same route
(the first in order whose pattern and predicates accept the request) and the same match
dict, for every route of every service, on paths made from the patterns and near misses."""

from __future__ import annotations

import random
import re

import pytest
from pyramid.interfaces import IRoutesMapper
from pyramid.request import Request
from pyramid.urldispatch import RoutesMapper

from logistics_shared.web.routing import IndexedRoutesMapper, literal_prefix, path_key

VALUES = ["x", "AMS", "MUG-01", "27e5c698-e4a7-458a-8dac-21f8e50a296d", "1", "%C3%A9", "a%20b"]
_PARAM = re.compile(r"\{[^}]*\}")


def paths_for(pattern: str, rng: random.Random) -> list[str]:
    base = _PARAM.sub(lambda _m: rng.choice(VALUES), pattern).replace("*subpath", "a/b/c.js")
    return [
        base,
        base + "/",
        base + "/extra",
        base[:-1],
        base.upper(),
        "/" + base,
        base.replace("/v1/", "/v2/"),
        base.rsplit("/", 1)[0],
    ]


def outcome(mapper, path: str):
    try:
        info = mapper(Request.blank(path))
    except Exception as exc:  # a path that is not UTF-8 once decoded: the same error
        return type(exc).__name__
    return (info["route"].name if info["route"] else None, info["match"])


@pytest.mark.parametrize("service", ["inventory", "shipping", "support"])
def test_same_route_and_match_as_pyramids_mapper(service_client, service):
    ours = service_client(service).registry.queryUtility(IRoutesMapper)
    assert isinstance(ours, IndexedRoutesMapper)
    pyramids = RoutesMapper()
    for route in ours.get_routes():
        pyramids.connect(route.name, route.pattern, route.factory, route.predicates, route.pregenerator)
    rng = random.Random(12)
    paths = ["/", "/v1", "/v1/", "//", "/nothing/here", "/healthz/x", "/docs/static/swagger/"]
    for route in ours.get_routes():
        paths.extend(paths_for(route.pattern, rng))
    assert len(paths) > 100
    for path in paths:
        assert outcome(ours, path) == outcome(pyramids, path), path


def test_a_later_route_of_the_same_prefix_still_wins_when_the_earlier_ones_do_not_match():
    ours, pyramids = IndexedRoutesMapper(), RoutesMapper()
    for mapper in (ours, pyramids):
        mapper.connect("one", "/v1/things/{id:\\d+}")
        mapper.connect("other", "/v1/{kind}/{id}")
        mapper.connect("star", "/v1/things/*rest")
        mapper.connect("old", "/v1/old/:name")
    paths = ["/v1/things/12", "/v1/things/ab", "/v1/things/a/b", "/v1/old/x", "/v1/stuff/x", "/v1/things"]
    for path in paths:
        assert outcome(ours, path) == outcome(pyramids, path), path


def test_prefixes_and_keys():
    assert literal_prefix("/v1/tracking/{number}") == "/v1/tracking/"
    assert literal_prefix("v1/items") == "/v1/items"
    assert literal_prefix("/docs/static/*subpath") == "/docs/static/"
    assert literal_prefix("/v1/old/:name") == "/v1/old/"
    assert path_key("/v1/tracking/DP9/x") == "/v1/tracking"
    assert path_key("/v1/items") == "/v1/items"
    assert path_key("/healthz") == "/healthz"
    assert path_key("/") == "/"


def test_made_up_paths_do_not_grow_the_mapper(monkeypatch):
    from logistics_shared.web import routing

    monkeypatch.setattr(routing, "MAX_KEYS", 3)
    mapper = IndexedRoutesMapper()
    mapper.connect("thing", "/v1/things/{id}")
    for n in range(10):
        outcome(mapper, f"/v1/made-up-{n}/x")
    assert len(mapper._candidates) == 3
    assert outcome(mapper, "/v1/things/1") == ("thing", {"id": "1"})
