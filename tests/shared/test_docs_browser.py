"""``/docs`` as a person uses it: each service's Swagger UI page in headless Chromium,
served by a real ``logistics up``.

The page must render every operation of the service's ``/openapi.json`` (OpenAPI 3.1,
which Swagger UI 4 could not), take a bearer token through the Authorize dialog and
keep it across a reload, and run "Try it out" against the live service.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..embedded import PORTS, Up, logistics_up
from ..services import need_browser

# Real processes end to end.
pytestmark = pytest.mark.e2e

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: A list endpoint per service that needs a token and no parameter, to try out.
TRY_OUT = {"inventory": "/v1/stock", "shipping": "/v1/shipments", "support": "/v1/tickets"}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
#: What the browser must be told about each static file of the page.
CONTENT_TYPES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui-standalone-preset.js": "text/javascript; charset=utf-8",
    "init.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
#: Generous, because the machine is shared: these are waits, not timings.
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    need_browser()
    with logistics_up(tmp_path_factory.mktemp("docs-up")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _spec(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/openapi.json", timeout=10) as response:
        return json.loads(response.read())


def _operations(spec: dict[str, Any]) -> set[tuple[str, str]]:
    # The page lists the outbound webhooks (OpenAPI 3.1 ``webhooks``) with the paths.
    items = {**spec["paths"], **spec.get("webhooks", {})}
    return {
        (method.upper(), path) for path, item in items.items() for method in item if method in HTTP_METHODS
    }


def _colours(png: Path) -> int:
    from PIL import Image

    with Image.open(png) as image:
        rgb = image.convert("RGB")
        # maxcolors = every pixel, so getcolors() never gives up and returns None.
        return len(rgb.getcolors(maxcolors=rgb.width * rgb.height))


@pytest.mark.browser
@pytest.mark.parametrize("service", sorted(PORTS))
def test_docs_page_renders_authorises_and_tries_out(up: Up, browser: Any, service: str, tmp_path: Path):
    base = up.url(service)
    spec = _spec(base)
    path = TRY_OUT[service]
    assert spec["paths"][path]["get"]["security"], f"GET {path} should need a token"
    token = up.token("--role", "admin")

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on("console", lambda msg: msg.type == "error" and errors.append(f"console: {msg.text}"))
    headers: dict[str, str] = {}

    def on_response(response: Any) -> None:
        if response.url.startswith(base) and response.status >= 400:
            errors.append(f"{response.status} {response.url}")
        name = response.url.rsplit("/", 1)[-1]
        if name in CONTENT_TYPES:
            headers[name] = response.headers.get("content-type", "")

    page.on("response", on_response)
    try:
        page.goto(f"{base}/docs")
        # Rendered: the spec's title is on the page and the operations are listed.
        page.locator(".swagger-ui .info .title").get_by_text(spec["info"]["title"]).wait_for()
        page.locator(".opblock").first.wait_for()
        assert not page.locator(".swagger-ui .errors-wrapper").is_visible(), "Swagger UI reports errors"

        rendered = {
            (
                block.locator(".opblock-summary-method").inner_text().strip().upper(),
                block.locator(".opblock-summary-path").get_attribute("data-path"),
            )
            for block in page.locator(".opblock").all()
        }
        assert rendered == _operations(spec)
        assert page.locator(".opblock").count() == len(rendered), "an operation is rendered twice"

        _authorise(page, token)

        operation = page.locator(f'.opblock-get:has(.opblock-summary-path[data-path="{path}"])')
        operation.locator(".opblock-summary-control").click()
        operation.get_by_role("button", name="Try it out").click()
        operation.get_by_role("button", name="Execute").click()
        status = operation.locator(".live-responses-table .response .response-col_status")
        status.wait_for()
        assert status.inner_text().strip() == "200", operation.locator(".live-responses-table").inner_text()
        # The request went out with the token typed into the dialog.
        assert f"Authorization: Bearer {token}" in operation.locator(".curl-command").inner_text()

        shot = tmp_path / f"{service}-docs.png"
        page.screenshot(path=str(shot), full_page=True)
        blank = tmp_path / "blank.png"
        blank_page = context.new_page()
        blank_page.goto("about:blank")
        blank_page.screenshot(path=str(blank), full_page=True)
        blank_page.close()
        size, colours = shot.stat().st_size, _colours(shot)
        # Shown with -s, to see what the page weighs.
        print(f"{service}: {shot} {size} bytes, {colours} colours")
        assert size > 20 * blank.stat().st_size, (size, blank.stat().st_size)
        assert colours > 100, f"the page looks blank ({colours} colours)"

        # persistAuthorization: a reload keeps the token (the padlock stays locked).
        page.reload()
        page.locator(".opblock").first.wait_for()
        page.locator(".auth-wrapper button.authorize.locked").wait_for()

        assert errors == []
        assert {name: headers.get(name, "").lower() for name in CONTENT_TYPES} == CONTENT_TYPES
    finally:
        context.close()


def _authorise(page: Any, token: str) -> None:
    """The Authorize dialog, as a person fills it in."""
    page.locator(".auth-wrapper").get_by_role("button", name="Authorize").click()
    dialog = page.locator(".modal-ux")
    dialog.wait_for()
    # One form per security scheme (shipping also lists the carriers' webhook signature).
    bearer = dialog.locator("form").filter(has=page.get_by_text("bearer", exact=True))
    # The field's accessible name is its aria-label; the visible label says "Value:".
    bearer.get_by_label("auth-bearer-value").fill(token)
    bearer.get_by_role("button", name="Apply credentials").click()
    # Once it holds the token, Swagger UI says "Authorized" and offers a Logout.
    bearer.get_by_text("Authorized", exact=True).wait_for()
    bearer.get_by_role("button", name="Remove authorization").wait_for()
    bearer.get_by_role("button", name="Close").click()
    dialog.wait_for(state="detached")
    page.locator(".auth-wrapper button.authorize.locked").wait_for()


def test_need_browser_skips_or_fails_by_the_flag(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    missing = str(tmp_path / "no-chromium")
    monkeypatch.setenv("LOGISTICS_REQUIRE_SERVICES", "")
    with pytest.raises(pytest.skip.Exception):
        need_browser(missing)
    monkeypatch.setenv("LOGISTICS_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="forbids skipping"):
        need_browser(missing)
