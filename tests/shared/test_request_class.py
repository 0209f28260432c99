"""Requests are built from LogisticsRequest itself, never from a per-request subclass.

A property added with ``config.add_request_method`` (pyramid_tm's includeme adds
``request.tm`` that way) makes Pyramid create a new subclass of the request class on
every request: on a hot read that was about a fifth of its instructions. The request's
own properties (``dbsession``, ``outbox``, ``tm``) are declared on the class instead.
"""

from __future__ import annotations

import pytest
import transaction
from pyramid.events import NewResponse
from pyramid.interfaces import IRequestExtensions
from webtest import TestApp

from logistics_shared.identity import Role
from logistics_shared.security import load_keyring, mint_token
from logistics_shared.web.request import LogisticsRequest


@pytest.mark.parametrize("service", ["inventory", "shipping", "support"])
def test_no_request_extensions(service_client, service):
    extensions = service_client(service).registry.queryUtility(IRequestExtensions)
    assert extensions is None or (not extensions.methods and not extensions.descriptors)


def test_requests_are_logistics_requests_and_writes_have_their_transaction_manager(
    specs, database_factory, tmp_path
):
    from ..conftest import make_settings

    spec = specs["inventory"]
    settings = make_settings("inventory", database_factory(spec, "sqlite"), tmp_path)
    config = spec.configure(settings)
    seen = []
    config.add_subscriber(
        lambda event: seen.append((event.request.method, type(event.request), event.request.tm)), NewResponse
    )
    app = config.make_wsgi_app()
    token = mint_token(load_keyring(settings), role=Role.ADMIN, subject="test")
    client = TestApp(app, extra_environ={"HTTP_AUTHORIZATION": f"Bearer {token}"})
    client.get("/v1/items", status=200)
    body = {"sku": "TM-1", "name": "tm", "unit_weight_g": 1, "length_mm": 1, "width_mm": 1, "height_mm": 1}
    client.post_json("/v1/items", {**body, "reorder_point": 0}, status=201)
    client.get("/v1/items/TM-1", status=200)  # the write committed through request.tm
    assert [(method, cls) for method, cls, _tm in seen] == [
        ("GET", LogisticsRequest),
        ("POST", LogisticsRequest),
        ("GET", LogisticsRequest),
    ]
    # pyramid_tm's request.tm: the explicit manager the settings name, one per request.
    managers = [tm for _method, _cls, tm in seen]
    assert all(isinstance(tm, transaction.TransactionManager) and tm.explicit for tm in managers)
    assert len({id(tm) for tm in managers}) == 3
    app.registry["dbengine"].dispose()
