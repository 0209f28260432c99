"""The bad-input table: requests a client can send that must be refused cleanly.

Each endpoint gets a table of cases (GUIDE §7): the right 4xx status, an RFC 9457
``application/problem+json`` body (a 422 pointing at the offending field), no
traceback, and nothing written to the database. :func:`run_table` sends every
case twice, once in-process through WebTest and once as raw HTTP against
waitress on an ephemeral port, so the framing cases (chunked bodies, bodies
without ``Content-Length``) meet a real HTTP parser.
"""

from __future__ import annotations

import copy
import http.client
import json
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from sqlalchemy import inspect, text
from webtest import TestApp, TestRequest
from webtest.http import StopableWSGIServer

from .conftest import Client

JSON = "application/json"
PROBLEM = "application/problem+json"
DELETE = object()  # put at a pointer: remove the field instead
LEAKS = ("Traceback", 'File "', "sqlalchemy", "psycopg", "sqlite3", "OperationalError", "DataError")


# --- the table ----------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    label: str
    method: str
    path: str
    body: bytes | None
    status: int
    pointers: tuple[str, ...] = ()
    content_type: str | None = JSON
    role: str = "admin"
    warehouses: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    #: ``length`` (Content-Length), ``chunked`` or ``none`` (no length at all).
    framing: str = "length"
    #: The query parameter a 400 must name (its ``parameter`` member).
    parameter: str | None = None


@dataclass(frozen=True)
class Twin:
    """Two requests that differ only in a reference the caller may not see vs one that
    does not exist: the answers must be identical once the two names are swapped."""

    hidden: Case
    unknown: Case
    hidden_name: str
    unknown_name: str


def js(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def patched(base: dict[str, Any], pointer: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``base`` with ``value`` at the JSON ``pointer`` (DELETE removes it)."""
    data = copy.deepcopy(base)
    *parents, last = pointer.strip("/").split("/")
    target: Any = data
    for token in parents:
        target = target[int(token)] if isinstance(target, list) else target[token]
    key: Any = int(last) if isinstance(target, list) else last
    if value is DELETE:
        del target[key]
    else:
        target[key] = value
    return data


def with_raw_field(base: dict[str, Any], name: str, raw: bytes) -> bytes:
    """``base`` as JSON plus one field whose value is ``raw`` bytes, spliced in verbatim."""
    head = js(base)[:-1]
    return head + (b", " if base else b"") + js(name) + b": " + raw + b"}"


def short(value: Any) -> str:
    shown = "<absent>" if value is DELETE else repr(value)
    return shown if len(shown) <= 24 else f"{shown[:12]}...({len(shown)} chars)"


def invalid(
    method: str, path: str, base: dict[str, Any], pointer: str, values: tuple[Any, ...], **kw: Any
) -> list[Case]:
    """One 422 case per value put at ``pointer``; the error must point there (or at ``expect``)."""
    expect = kw.pop("expect", pointer)
    status = kw.pop("status", 422)
    return [
        Case(
            f"{pointer} = {short(value)}",
            method,
            path,
            js(patched(base, pointer, value)),
            status,
            (expect,) if status == 422 else (),
            **kw,
        )
        for value in values
    ]


def duplicated(base: dict[str, Any]) -> bytes:
    """``base`` with its first member written twice (the second with another value)."""
    name = next(iter(base), "name")
    first = base if base else {name: 1}
    return js(first)[:-1] + b", " + js(name) + b": " + js(["another", "value"]) + b"}"


#: Percent-encoded bytes that are not UTF-8: a lone byte, a bad continuation, an overlong
#: "/", a UTF-16 surrogate, a code point beyond U+10FFFF, a truncated sequence.
BAD_UTF8 = ("%ff", "%c3%28", "%c0%af", "%ed%a0%80", "%f4%90%80%80", "%e2%82")


def query_bytes(method: str, path: str, body: bytes | None, names: tuple[str, ...]) -> list[Case]:
    """A 400 naming the parameter for every non-UTF-8 key, and for every value of ``names``."""
    joiner = "&" if "?" in path else "?"
    cases = [
        Case(f"query key {raw}", method, f"{path}{joiner}{raw}=1", body, 400, parameter=raw)
        for raw in BAD_UTF8
    ]
    cases += [
        Case(f"query {name}={raw}", method, f"{path}{joiner}{name}={raw}", body, 400, parameter=name)
        for name in names
        for raw in BAD_UTF8
    ]
    return cases


def envelope(method: str, path: str, base: dict[str, Any], max_bytes: int) -> list[Case]:
    """What every JSON endpoint must refuse before its schema even runs, and the
    shapes its schema must refuse whatever the fields are."""
    valid = js(base)
    over = b'{"pad": "' + b"x" * max_bytes + b'"}'
    nested = b"[" * 1000 + b"]" * 1000  # deep, but within the parser's 1024 levels
    return [
        Case("malformed JSON", method, path, b'{"name": ', 400),
        Case("trailing comma", method, path, valid[:-1] + b",}", 400),
        Case("invalid UTF-8", method, path, b'{"name": "\xff\xfe"}', 400),
        Case("NaN", method, path, b"NaN", 400),
        Case("lone surrogate", method, path, b'{"name": "\\ud800"}', 400),
        Case("number out of double range", method, path, b'{"name": 1e400}', 400),
        Case("empty body", method, path, b"", 400),
        Case("blank body", method, path, b" \r\n\t ", 400),
        Case("text/plain", method, path, valid, 415, content_type="text/plain"),
        Case("form", method, path, b"name=x&sku=y", 415, content_type="application/x-www-form-urlencoded"),
        Case("multipart", method, path, b"--x--\r\n", 415, content_type="multipart/form-data; boundary=x"),
        Case("no content type", method, path, valid, 415, content_type=None),
        Case("latin-1 JSON", method, path, valid, 415, content_type="application/json; charset=latin-1"),
        Case("100000 levels of [", method, path, b"[" * 100_000, 400),
        Case("100000 levels of {", method, path, b'{"a":' * 100_000, 400),
        Case("a list", method, path, js([base]), 422, ("/",)),
        Case("a string", method, path, js("x"), 422, ("/",)),
        Case("null", method, path, b"null", 422, ("/",)),
        Case("a number", method, path, b"1", 422, ("/",)),
        Case("unknown field", method, path, js({**base, "bogus": 1}), 422, ("/bogus",)),
        Case("pointer escaping", method, path, js({**base, "a/b~c": 1}), 422, ("/a~1b~0c",)),
        Case(
            "1000 levels in an unknown field",
            method,
            path,
            with_raw_field(base, "bogus", nested),
            422,
            ("/bogus",),
        ),
        Case("query parameter", method, path + "?dry_run=1", valid, 422, ("/dry_run",)),
        *query_bytes(method, path, valid, ("dry_run",)),
        Case("a member twice", method, path, duplicated(base), 400),
        Case("a member twice, nested", method, path, with_raw_field(base, "bogus", b'{"a": 1, "a": 2}'), 400),
        Case("a member twice, escaped", method, path, with_raw_field(base, "a", b'1, "\\u0061": 2'), 400),
        Case(
            "JSON Patch",
            method,
            path,
            b'[{"op": "add", "path": "/a", "value": 1}]',
            415,
            content_type="application/json-patch+json",
        ),
        Case("JSON Merge Patch", method, path, valid, 415, content_type="application/merge-patch+json"),
        # Media types are case-insensitive: this is JSON, and its unknown field is what is wrong.
        Case(
            "APPLICATION/JSON",
            method,
            path,
            js({**base, "bogus": 1}),
            422,
            ("/bogus",),
            content_type="APPLICATION/JSON; charset=UTF-8",
        ),
        Case("over the limit (Content-Length)", method, path, over, 413),
        Case("over the limit (chunked)", method, path, over, 413, framing="chunked"),
        Case(
            "unknown field (chunked)",
            method,
            path,
            js({**base, "bogus": 1}),
            422,
            ("/bogus",),
            framing="chunked",
        ),
        Case("body without Content-Length", method, path, valid, 400, framing="none"),
    ]


#: What an action accepts that other writes refuse: no body at all means "no parameters".
_ACCEPTED_BY_ACTIONS = {"empty body", "body without Content-Length"}


def action_envelope(method: str, path: str, base: dict[str, Any], max_bytes: int) -> list[Case]:
    """:func:`envelope` for an action (``POST .../{id}/cancel``): the body is optional,
    but a body that is sent is judged like any other."""
    return [
        *(case for case in envelope(method, path, base, max_bytes) if case.label not in _ACCEPTED_BY_ACTIONS),
        Case("text/plain without bytes", method, path, b"", 415, content_type="text/plain"),
        Case("a bogus member", method, path, js({**base, "totally": "bogus"}), 422, ("/totally",)),
    ]


# --- sending a case -----------------------------------------------------------
@dataclass
class Answer:
    status: int
    content_type: str
    text: str


Sender = Callable[[Case], Answer]


def webtest_sender(client: Client) -> Sender:
    apps: dict[tuple[str, tuple[str, ...]], TestApp] = {}

    def send(case: Case) -> Answer:
        app = apps.get((case.role, case.warehouses))
        if app is None:
            app = apps[(case.role, case.warehouses)] = client.as_(case.role, *case.warehouses)
        req = TestRequest.blank(case.path, method=case.method, headers=dict(case.headers))
        req.environ.update(app.extra_environ)  # the bearer token
        if case.body is not None:
            req.body = case.body
        if case.content_type is not None:
            req.content_type = case.content_type
        if case.framing != "length":
            # What a server hands the app for a body it did not measure: no
            # CONTENT_LENGTH, and (chunked) an input stream that ends by itself.
            req.environ.pop("CONTENT_LENGTH", None)
            req.environ["wsgi.input"] = BytesIO(case.body or b"")
            if case.framing == "chunked":
                req.environ["wsgi.input_terminated"] = True
                req.environ["HTTP_TRANSFER_ENCODING"] = "chunked"
        try:
            res = app.do_request(req, expect_errors=True)
        except Exception as exc:
            # The app let an exception escape; a server would answer its own 500.
            return Answer(500, "", f"the app raised {exc.__class__.__name__}: {exc}")
        return Answer(res.status_int, res.headers.get("Content-Type", ""), res.text)

    return send


def http_sender(client: Client, port: int) -> Sender:
    def send(case: Case) -> Answer:
        headers = {
            "Authorization": f"Bearer {client.token(case.role, case.warehouses)}",
            **dict(case.headers),
        }
        if case.content_type is not None:
            headers["Content-Type"] = case.content_type
        if case.framing == "none":
            return _send_without_length(port, case, headers)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            if case.framing == "chunked":
                body = case.body or b""
                chunks = iter([body[i : i + 65536] for i in range(0, len(body), 65536)])
                conn.request(case.method, case.path, body=chunks, headers=headers, encode_chunked=True)
            else:
                conn.request(case.method, case.path, body=case.body, headers=headers)
            res = conn.getresponse()
            return Answer(res.status, res.getheader("Content-Type", ""), res.read().decode())
        finally:
            conn.close()

    return send


def _send_without_length(port: int, case: Case, headers: dict[str, str]) -> Answer:
    """A request with a body but neither ``Content-Length`` nor ``Transfer-Encoding``:
    HTTP/1.1 says it has no body, whatever bytes follow the headers."""
    head = f"{case.method} {case.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode() + b"\r\n" + (case.body or b""))
        res = http.client.HTTPResponse(sock, method=case.method)
        res.begin()
        return Answer(res.status, res.getheader("Content-Type", ""), res.read().decode())


@contextmanager
def waitress_server(app: Any) -> Iterator[int]:
    """waitress serving ``app`` on 127.0.0.1, an ephemeral port, in a background thread."""
    server = StopableWSGIServer.create(app, host="127.0.0.1", port=0, expose_tracebacks=False, threads=2)
    try:
        yield server.effective_port  # listening already; the loop thread accepts
    finally:
        server.shutdown()


# --- checking an answer -------------------------------------------------------
def snapshot(engine: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows (in a stable order): any write a bad request made shows up."""
    state = {}
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            rows = conn.execute(text(f'SELECT * FROM "{table}"')).all()
            state[table] = sorted((tuple(r) for r in rows), key=repr)
    return state


def problems_with(case: Case, answer: Answer) -> list[str]:
    found = []
    if answer.status != case.status:
        found.append(f"status {answer.status}, expected {case.status}")
    if answer.content_type.split(";")[0].strip() != PROBLEM:
        found.append(f"content type {answer.content_type!r}")
    leaked = [word for word in LEAKS if word.lower() in answer.text.lower()]
    if leaked:
        found.append(f"leaks {leaked}")
    try:
        body = json.loads(answer.text)
    except ValueError:
        return [*found, "body is not JSON"]
    if not isinstance(body, dict):
        return [*found, "body is not an object"]
    for name, kind in (("type", str), ("title", str), ("status", int), ("detail", str), ("instance", str)):
        if not isinstance(body.get(name), kind) or body.get(name) in ("", None):
            found.append(f"problem field {name!r} missing or not a {kind.__name__}")
    if body.get("status") != answer.status:
        found.append(f"problem status {body.get('status')} != HTTP status {answer.status}")
    if not str(body.get("type", "")).startswith("urn:logistics:problem:"):
        found.append(f"problem type {body.get('type')!r}")
    if body.get("instance") != case.path.split("?")[0]:
        found.append(f"instance {body.get('instance')!r}")
    if case.parameter is not None and body.get("parameter") != case.parameter:
        found.append(f"names parameter {body.get('parameter')!r}, expected {case.parameter!r}")
    if case.status == 422:
        errors = body.get("errors")
        if not isinstance(errors, list) or not all(
            isinstance(e, dict) and isinstance(e.get("pointer"), str) and isinstance(e.get("detail"), str)
            for e in errors
        ):
            found.append(f"errors not a list of {{pointer, detail}}: {errors!r}")
        elif tuple(e["pointer"] for e in errors) != case.pointers:
            found.append(f"pointers {[e['pointer'] for e in errors]}, expected {list(case.pointers)}")
    return found


def same_wording(twin: Twin, hidden: Answer, unknown: Answer) -> list[str]:
    """The hidden reference must be answered exactly like the unknown one."""
    if hidden.status != unknown.status:
        return [f"status {hidden.status} for the hidden one vs {unknown.status} for the unknown one"]
    seen = hidden.text.replace(twin.hidden_name, "<name>")
    expected = unknown.text.replace(twin.unknown_name, "<name>")
    if seen != expected:
        return [f"worded differently: {hidden.text} vs {unknown.text}"]
    return []


def run_table(
    client: Client,
    cases: list[Case],
    twins: tuple[Twin, ...] = (),
    check: Callable[[Any], None] | None = None,
) -> None:
    """Send every case through WebTest and through waitress; report every failure at once.

    ``check(engine)`` runs once at the end: the service's own invariants.
    """
    failures: list[str] = []
    with waitress_server(client.wsgi) as port:
        for transport, send in (("webtest", webtest_sender(client)), ("waitress", http_sender(client, port))):
            before = snapshot(client.engine)
            for case in cases:
                answer = send(case)
                found = problems_with(case, answer)
                after = snapshot(client.engine)
                if after != before:
                    changed = sorted(k for k in after if after[k] != before[k])
                    found.append(f"database changed: {changed}")
                    before = after
                if found:
                    failures.append(
                        f"[{transport}] {case.method} {case.path[:60]} ({case.label}, as {case.role}): "
                        + "; ".join(found)
                        + f" -- got {answer.status} {answer.text[:300]}"
                    )
            for twin in twins:
                found = same_wording(twin, send(twin.hidden), send(twin.unknown))
                if found:
                    failures.append(
                        f"[{transport}] {twin.hidden.method} {twin.hidden.path}: " + "; ".join(found)
                    )
    if check is not None:
        check(client.engine)
    assert not failures, f"{len(failures)} bad-input failures:\n" + "\n".join(failures)
