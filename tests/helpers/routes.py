"""The routes and methods an app serves, and the ones that are public on purpose."""

from __future__ import annotations

PUBLIC = {"healthz", "readyz", "metrics", "openapi", "docs", "docs_init", "__docs/static/swagger/"}


def served(registry) -> set[tuple[str, str]]:
    """Every (method, route name) the app answers."""
    return {(method, name) for method, name, _ in views(registry)}


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def views(registry) -> list[tuple[str, str, object]]:
    """(method, route name, permission or None) for every view on a route."""
    found = []
    views_by_route: dict[str, list] = {}
    for item in registry.introspector.get_category("views") or []:
        view = item["introspectable"]
        if view["route_name"] and not view["context"]:
            permissions = [r["value"] for r in item["related"] if r.category_name == "permissions"]
            views_by_route.setdefault(view["route_name"], []).append((view, permissions))
    for route in registry.introspector.get_category("routes") or []:
        name = route["introspectable"]["name"]
        for view, permissions in views_by_route.get(name, []):
            methods = view["request_methods"] or METHODS
            methods = (methods,) if isinstance(methods, str) else methods
            found.extend((method, name, permissions[0] if permissions else None) for method in methods)
    return found
