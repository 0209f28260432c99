"""Every migration's ``upgrade()`` only expands the schema, unless its file says it contracts.

During a rollout (and after a rollback, which never downgrades) the previous
release runs on the newest schema, so an upgrade must not take away or tighten
anything that release reads or writes: no dropped tables, columns, constraints or
indexes, no renames, no column type changes other than widening, no NOT NULL on an
existing column (nor a new NOT NULL column without a server default), no new
constraint on an existing table, and no raw SQL that drops, renames, retypes or
sets NOT NULL. A contract step belongs in a later release than the expand it
follows, and its file says so with a marker line::

    # contract: <why it is safe now>; released after <revision>

where ``<revision>`` is an earlier revision of the same service (the release whose
code stopped reading the old shape). The checker reads the code with ``ast``:
``upgrade()`` and the module's functions it calls, never ``downgrade()``. The table
of snippets below proves it catches each kind of contract.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..helpers.old_revision import REPO, SERVICES, Revision, parse_revision, revisions_in_tree, versions_dir

MARKER = re.compile(
    r"^\s*#\s*contract:\s*(?P<reason>[^;\n]*?)\s*;\s*released after\s+(?P<revision>[\w.-]+)\s*$", re.M
)

#: Released before the rule was written down and checked; kept as they are (the releases that
#: ran them are gone), and listed so that the checker still proves it sees them.
BEFORE_THE_RULE = {
    f"{versions_dir('shipping')}/0006_event_ids_per_parcel.py": (
        "replaced the (source, external_id) unique constraint by (source, shipment_id, "
        "external_id): 0005's tracking code, whose INSERT ... ON CONFLICT (source, external_id) "
        "needs the old constraint, fails on PostgreSQL against 0006"
    ),
}

#: Raw SQL that contracts. Words, so "CREATE OR REPLACE FUNCTION" or a trigger "BEFORE ... DELETE" pass.
_CONTRACT_SQL = (
    (re.compile(r"\bDROP\b", re.I), "DROP"),
    (re.compile(r"\bRENAME\b", re.I), "RENAME"),
    (re.compile(r"\bALTER\s+COLUMN\b[^;]*?\bTYPE\b", re.I | re.S), "ALTER COLUMN ... TYPE"),
    (re.compile(r"\bSET\s+NOT\s+NULL\b", re.I), "SET NOT NULL"),
    (re.compile(r"\bADD\s+(CONSTRAINT|PRIMARY\s+KEY|FOREIGN\s+KEY|UNIQUE|CHECK)\b", re.I), "ADD CONSTRAINT"),
)

#: alembic operations that add a constraint existing rows and the old code's writes may break.
_TIGHTENING = {
    "create_unique_constraint",
    "create_check_constraint",
    "create_foreign_key",
    "create_primary_key",
}
_RENAMES = {"rename_table"}

#: Column types by width: a change along one of these chains, to a wider one, keeps old data and writes.
_INTEGERS = ("SmallInteger", "Integer", "BigInteger")
_STRINGS = ("String", "VARCHAR", "Unicode")
_TEXTS = ("Text", "UnicodeText", "TEXT")


@dataclass(frozen=True)
class Violation:
    line: int
    what: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.what}"


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _kwarg(call: ast.Call, name: str) -> ast.expr | None:
    return next((kw.value for kw in call.keywords if kw.arg == name), None)


def _is_const(node: ast.expr | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def _type_width(node: ast.expr | None) -> tuple[str, int | None] | None:
    """(family, width) of ``sa.String(32)``, ``sa.Integer()`` or ``sa.Text``; None if unknown."""
    if node is None:
        return None
    call = node if isinstance(node, ast.Call) else None
    name = _name(call.func if call else node)
    length: int | None = None
    if call is not None:
        arg = call.args[0] if call.args else _kwarg(call, "length")
        if isinstance(arg, ast.Constant) and isinstance(arg.value, int):
            length = arg.value
    if name in _INTEGERS:
        return "int", _INTEGERS.index(name)
    if name in _STRINGS:
        return "str", length
    if name in _TEXTS:
        return "str", None  # unbounded
    return None


def _widens(old: ast.expr | None, new: ast.expr | None) -> bool:
    before, after = _type_width(old), _type_width(new)
    if before is None or after is None or before[0] != after[0]:
        return False
    if after[1] is None:  # Text, or a String without a length
        return True
    return before[1] is not None and after[1] >= before[1]


class _Strings:
    """The literal text of an SQL argument: constants, f-strings' constant parts, module-level
    string constants by name, ``text(...)``/``sa.text(...)``; None when it cannot be read."""

    def __init__(self, module: ast.Module) -> None:
        self.names: dict[str, str] = {}
        for node in module.body:
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                self.names[node.targets[0].id] = node.value.value

    def read(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.JoinedStr):
            parts = [self.read(v) if not isinstance(v, ast.FormattedValue) else " " for v in node.values]
            return None if any(p is None for p in parts) else "".join(p or "" for p in parts)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self.read(node.left), self.read(node.right)
            return None if left is None or right is None else left + right
        if isinstance(node, ast.Name):
            return self.names.get(node.id)
        if isinstance(node, ast.Call) and _name(node.func) == "text" and node.args:
            return self.read(node.args[0])
        return None


def _reachable(module: ast.Module) -> list[ast.FunctionDef]:
    """``upgrade()`` and the module-level functions it calls (transitively), not ``downgrade()``."""
    functions = {n.name: n for n in module.body if isinstance(n, ast.FunctionDef)}
    if "upgrade" not in functions:
        return []
    todo, seen = ["upgrade"], set[str]()
    while todo:
        name = todo.pop()
        if name in seen or name == "downgrade":
            continue
        seen.add(name)
        for node in ast.walk(functions[name]):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in functions:
                todo.append(node.func.id)
    return [functions[name] for name in sorted(seen)]


def contract_operations(source: str, filename: str = "<migration>") -> list[Violation]:
    """What ``upgrade()`` does that the previous release's code may not survive."""
    module = ast.parse(source, filename=filename)
    strings = _Strings(module)
    found: list[Violation] = []
    calls = sorted(
        {id(n): n for f in _reachable(module) for n in ast.walk(f) if isinstance(n, ast.Call)}.values(),
        key=lambda n: (n.lineno, n.col_offset),
    )
    for call in calls:
        if not isinstance(call.func, ast.Attribute):
            continue
        op, line = call.func.attr, call.lineno
        if op.startswith("drop_") or op in _RENAMES:
            found.append(Violation(line, f"{op}()"))
        elif op in _TIGHTENING:
            found.append(Violation(line, f"{op}() on an existing table"))
        elif op == "alter_column":
            if _kwarg(call, "new_column_name") is not None:
                found.append(Violation(line, "alter_column(new_column_name=...): a rename"))
            new_type = _kwarg(call, "type_")
            if new_type is not None and not _widens(_kwarg(call, "existing_type"), new_type):
                found.append(Violation(line, "alter_column(type_=...): not a widening of existing_type"))
            if _is_const(_kwarg(call, "nullable"), False):
                found.append(Violation(line, "alter_column(nullable=False): NOT NULL on an existing column"))
        elif op == "add_column":
            for arg in call.args:
                if not (isinstance(arg, ast.Call) and _name(arg.func) == "Column"):
                    continue
                not_null = _is_const(_kwarg(arg, "nullable"), False) or _is_const(
                    _kwarg(arg, "primary_key"), True
                )
                if not_null and _kwarg(arg, "server_default") is None:
                    found.append(Violation(line, "add_column(): NOT NULL without a server_default"))
        elif op == "execute":
            if not call.args:
                continue
            sql = strings.read(call.args[0])
            if sql is None:
                found.append(Violation(line, "execute() with SQL the checker cannot read (use a literal)"))
                continue
            found.extend(
                Violation(line, f"execute(): {label}")
                for pattern, label in _CONTRACT_SQL
                if pattern.search(sql)
            )
    return found


@dataclass(frozen=True)
class Marker:
    reason: str
    revision: str


def contract_marker(source: str) -> Marker | None:
    match = MARKER.search(source)
    if match is None or not match["reason"]:
        return None
    return Marker(match["reason"], match["revision"])


def _ancestors(revisions: dict[str, Revision], revision: str) -> set[str]:
    found: set[str] = set()
    todo = list(revisions[revision].down_revision)
    while todo:
        rev = todo.pop()
        if rev not in found and rev in revisions:
            found.add(rev)
            todo.extend(revisions[rev].down_revision)
    return found


def check_file(source: str, path: str, revisions: dict[str, Revision]) -> list[str]:
    """Problems with one migration file: contract operations without a (valid) marker."""
    violations = contract_operations(source, path)
    if not violations:
        return []
    marker = contract_marker(source)
    if marker is None:
        return [
            f"{path}: {v} (a contract step needs `# contract: <reason>; released after <rev>`)"
            for v in violations
        ]
    own = parse_revision(source, path)
    if own is None or own.revision not in revisions:
        return [f"{path}: a contract marker on a file with no known revision"]
    if marker.revision not in _ancestors(revisions, own.revision):
        return [f"{path}: marker names {marker.revision!r}, which is not an earlier revision of this service"]
    return []


# --- the repository's migrations --------------------------------------------------------------


def _migration_files() -> list[tuple[str, Path]]:
    found = [
        (service, path)
        for service in SERVICES
        for path in sorted((REPO / versions_dir(service)).glob("*.py"))
        if path.name != "__init__.py"
    ]
    assert len(found) >= len(SERVICES), f"no migrations found under {REPO}/services/*/*/migrations/versions"
    return found


@pytest.mark.parametrize(
    ("service", "path"), _migration_files(), ids=lambda v: v.name if isinstance(v, Path) else v
)
def test_every_upgrade_only_expands_unless_marked(service: str, path: Path) -> None:
    relative = str(path.relative_to(REPO))
    source = path.read_text()
    if relative in BEFORE_THE_RULE:
        # Still seen by the checker, so the exemption cannot silently cover something else.
        assert contract_operations(source, relative), f"{relative} is exempt but no longer contracts"
        return
    problems = check_file(source, relative, revisions_in_tree(service))
    assert not problems, "\n".join(problems)


def test_the_exemptions_name_existing_files() -> None:
    for relative in BEFORE_THE_RULE:
        assert (REPO / relative).is_file(), relative


# --- the checker, on snippets ------------------------------------------------------------------


def _migration(body: str, *, head: str = "", helpers: str = "") -> str:
    return (
        f'"""a migration"""\n{head}\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
        'revision = "0003"\ndown_revision = "0002"\n\n'
        f"{helpers}\n"
        f"def upgrade() -> None:\n{body}\n\n"
        "def downgrade() -> None:\n    op.drop_table('anything')\n    op.execute('DROP TABLE x')\n"
    )


BAD = {
    "drop_table": ("    op.drop_table('items')\n", "drop_table()"),
    "drop_column": ("    op.drop_column('items', 'name')\n", "drop_column()"),
    "batch drop_column": (
        "    with op.batch_alter_table('items') as batch:\n        batch.drop_column('name')\n",
        "drop_column()",
    ),
    "drop_index": ("    op.drop_index('ix_items_sku', table_name='items')\n", "drop_index()"),
    "drop_constraint": (
        "    op.drop_constraint('uq_items_sku', 'items', type_='unique')\n",
        "drop_constraint()",
    ),
    "rename_table": ("    op.rename_table('items', 'products')\n", "rename_table()"),
    "column rename": (
        "    op.alter_column('items', 'name', new_column_name='title')\n",
        "a rename",
    ),
    "batch column rename": (
        "    with op.batch_alter_table('items') as batch:\n"
        "        batch.alter_column('name', new_column_name='title')\n",
        "a rename",
    ),
    "string narrowed": (
        "    op.alter_column('items', 'sku', existing_type=sa.String(64), type_=sa.String(32))\n",
        "not a widening",
    ),
    "text to string": (
        "    op.alter_column('items', 'note', existing_type=sa.Text(), type_=sa.String(200))\n",
        "not a widening",
    ),
    "bigint to int": (
        "    op.alter_column('items', 'n', existing_type=sa.BigInteger(), type_=sa.Integer())\n",
        "not a widening",
    ),
    "type change without existing_type": (
        "    op.alter_column('items', 'n', type_=sa.BigInteger())\n",
        "not a widening",
    ),
    "int to string": (
        "    op.alter_column('items', 'n', existing_type=sa.Integer(), type_=sa.String(20))\n",
        "not a widening",
    ),
    "not null on existing column": (
        "    op.alter_column('items', 'name', existing_type=sa.String(200), nullable=False)\n",
        "NOT NULL on an existing column",
    ),
    "not null column without default": (
        "    op.add_column('items', sa.Column('color', sa.String(20), nullable=False))\n",
        "NOT NULL without a server_default",
    ),
    "batch not null column without default": (
        "    with op.batch_alter_table('items') as batch:\n"
        "        batch.add_column(sa.Column('color', sa.String(20), nullable=False))\n",
        "NOT NULL without a server_default",
    ),
    "new unique constraint": (
        "    op.create_unique_constraint('uq_items_name', 'items', ['name'])\n",
        "create_unique_constraint()",
    ),
    "new foreign key": (
        "    op.create_foreign_key('fk', 'items', 'warehouses', ['warehouse_id'], ['id'])\n",
        "create_foreign_key()",
    ),
    "raw DROP COLUMN": ("    op.execute('ALTER TABLE items DROP COLUMN name')\n", "execute(): DROP"),
    "raw DROP TABLE, lower case": ("    op.execute('drop table if exists items')\n", "execute(): DROP"),
    "raw RENAME in an f-string": (
        "    table = 'items'\n    op.execute(f'ALTER TABLE {table} RENAME COLUMN name TO title')\n",
        "execute(): RENAME",
    ),
    "raw SQL in a module constant": (
        "    op.execute(SQL)\n",
        "execute(): DROP",
    ),
    "raw SQL through sa.text and a connection": (
        "    op.get_bind().execute(sa.text('ALTER TABLE items RENAME TO products'))\n",
        "execute(): RENAME",
    ),
    "raw ALTER COLUMN TYPE": (
        "    op.execute('ALTER TABLE items ALTER COLUMN sku TYPE varchar(8)')\n",
        "execute(): ALTER COLUMN ... TYPE",
    ),
    "raw SET NOT NULL": (
        "    op.execute('ALTER TABLE items ALTER COLUMN name SET NOT NULL')\n",
        "execute(): SET NOT NULL",
    ),
    "raw ADD CONSTRAINT": (
        "    op.execute('ALTER TABLE items ADD CONSTRAINT ck CHECK (n > 0)')\n",
        "execute(): ADD CONSTRAINT",
    ),
    "SQL the checker cannot read": (
        "    op.execute(build_sql())\n",
        "cannot read",
    ),
    "in a helper upgrade() calls": (
        "    _cleanup()\n",
        "drop_column()",
    ),
    "under a dialect branch": (
        "    if op.get_context().dialect.name == 'postgresql':\n        op.drop_table('items')\n",
        "drop_table()",
    ),
}

_HELPERS = (
    "SQL = 'DROP TABLE items'\n\n"
    "def build_sql() -> str:\n    return 'SELECT 1'\n\n"
    "def _cleanup() -> None:\n    op.drop_column('items', 'name')\n\n"
)


@pytest.mark.parametrize("case", sorted(BAD))
def test_the_checker_catches(case: str) -> None:
    body, expected = BAD[case]
    found = contract_operations(_migration(body, helpers=_HELPERS))
    assert any(expected in str(v) for v in found), f"{case}: {[str(v) for v in found]}"
    # and without a marker the file fails the rule
    assert check_file(_migration(body, helpers=_HELPERS), "x.py", _chain())


GOOD = {
    "new table": "    op.create_table('labels', sa.Column('id', sa.Integer(), primary_key=True))\n",
    "nullable column": "    op.add_column('items', sa.Column('color', sa.String(20), nullable=True))\n",
    "column with the default nullability": "    op.add_column('items', sa.Column('color', sa.String(20)))\n",
    "not null column with a server default": (
        "    with op.batch_alter_table('tickets') as batch:\n"
        "        batch.add_column(sa.Column('paused', sa.Float(), server_default='0', nullable=False))\n"
    ),
    "index": "    op.create_index('ix_items_name', 'items', ['name'])\n",
    "string widened": (
        "    op.alter_column('items', 'sku', existing_type=sa.String(32), type_=sa.String(64))\n"
    ),
    "string to text": "    op.alter_column('items', 'sku', existing_type=sa.String(32), type_=sa.Text())\n",
    "int to bigint": "    op.alter_column('items', 'n', existing_type=sa.Integer(), type_=sa.BigInteger())\n",
    "relaxed to nullable": (
        "    op.alter_column('items', 'name', existing_type=sa.String(200), nullable=True)\n"
    ),
    "trigger and function": (
        "    op.execute('CREATE OR REPLACE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "RETURN NULL; END $$')\n"
        '    op.execute("CREATE TRIGGER t BEFORE UPDATE OR DELETE OR TRUNCATE ON movements "\n'
        "               f\"FOR EACH STATEMENT EXECUTE FUNCTION f('{'x'}')\")\n"
    ),
    "a data fill": "    op.execute(\"UPDATE items SET color = 'none' WHERE color IS NULL\")\n",
    "drops only in downgrade": "    pass\n",
}


@pytest.mark.parametrize("case", sorted(GOOD))
def test_the_checker_lets_expansions_pass(case: str) -> None:
    source = _migration(GOOD[case], helpers=_HELPERS)
    assert contract_operations(source) == [], case
    assert check_file(source, "x.py", _chain()) == []


def _chain() -> dict[str, Revision]:
    return {
        "0001": Revision("0001", (), "0001.py"),
        "0002": Revision("0002", ("0001",), "0002.py"),
        "0003": Revision("0003", ("0002",), "0003.py"),
    }


DROP = "    op.drop_column('items', 'legacy_name')\n"


def test_a_marked_contract_passes() -> None:
    marked = _migration(DROP, head="# contract: nothing reads legacy_name since 0002; released after 0002")
    assert contract_operations(marked)  # still a contract step ...
    assert check_file(marked, "x.py", _chain()) == []  # ... that says why it is safe


@pytest.mark.parametrize(
    ("marker", "problem"),
    [
        ("# contract: released after 0002", "needs `# contract"),  # no reason
        ("# contract: nobody reads it", "needs `# contract"),  # no revision
        ("# contract: nobody reads it; released after 0009", "not an earlier revision"),
        ("# contract: nobody reads it; released after 0003", "not an earlier revision"),  # itself
        ('x = "# contract: nobody reads it; released after 0002"', "needs `# contract"),  # not a comment
    ],
)
def test_a_bad_marker_does_not_excuse_a_contract(marker: str, problem: str) -> None:
    problems = check_file(_migration(DROP, head=marker), "x.py", _chain())
    assert problems and all(problem in p for p in problems), problems
