"""Generate SQL step: diff a version's data model with the target's live schema, add its scripts.

Only additive changes are generated (create schema, create table, add column, widen a type, relax
NOT NULL, create index): SQL runs during Continue *before* the switch, so the running version
must keep working against the new schema. Anything else (a dropped column, a narrowed type) is a
warning, or an error when the old code could not keep working. Hand-written scripts not yet applied
in the target come after the generated DDL; each is recorded in the target's history table by a
statement of the same transaction. Rehearsal and execution live in ``steps/sql_execute.py``.
"""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Any

from deployments.catalog.bundles import VOLATILE_DEFAULTS, Column, Manifest, Table, manifest_from_json
from deployments.statements import (
    BLOCKS_WRITES,
    DESTRUCTIVE,
    FLAG_LABELS,
    LOCK_HEAVY,
    REWRITES_TABLE,
    TOUCHES_ROWS,
    classify,
    split_script,
)
from deployments.steps import StepFailed, StepLog
from deployments.steps.schema import (
    HISTORY_DDL,
    HISTORY_SCHEMA,
    HISTORY_TABLE,
    LiveColumn,
    LiveSchema,
    connect,
    read_live_schema,
    table_has_rows,
)

DATA_MODEL = "data model"
HISTORY = "history"
INTEGER_RANK = {"smallint": 1, "integer": 2, "bigint": 3}
VARCHAR_RE = re.compile(r"^character varying\((\d+)\)$")
NUMERIC_RE = re.compile(r"^numeric\((\d+),(\d+)\)$")


@dataclasses.dataclass(frozen=True)
class SqlStatement:
    sql: str
    kind: str  # create_schema, create_table, add_column, widen_column, relax_not_null, set_default,
    # create_index, script, record_script, history_table
    source: str  # "data model", "history" or the script's path in the bundle
    flags: tuple[str, ...] = ()
    line: int | None = None  # first line in its script

    def as_json(self) -> dict[str, Any]:
        return {"sql": self.sql, "kind": self.kind, "source": self.source, "flags": list(self.flags), "line": self.line}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SqlStatement:
        return cls(
            sql=data["sql"],
            kind=data["kind"],
            source=data["source"],
            flags=tuple(data.get("flags") or ()),
            line=data.get("line"),
        )


@dataclasses.dataclass(frozen=True)
class GeneratedScript:
    """What Generate SQL produced for one application in one target: fits ``GeneratedSql``."""

    application: str
    version: str
    schema: str
    statements: tuple[SqlStatement, ...]
    warnings: tuple[str, ...]
    schema_fingerprint: str
    schema_snapshot: dict[str, Any]
    notes: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.statements

    def model_fields(self) -> dict[str, Any]:
        """Field values for a ``GeneratedSql`` row (plan, application and version set by the caller)."""
        return {
            "statements": [s.as_json() for s in self.statements],
            "warnings": list(self.warnings),
            "schema_fingerprint": self.schema_fingerprint,
            "schema_snapshot": {
                "application": self.application,
                "version": self.version,
                "schema": self.schema,
                "description": self.schema_snapshot,
            },
        }

    @classmethod
    def from_model(cls, row: Any) -> GeneratedScript:
        """Back from a ``GeneratedSql`` row, as Continue reads it."""
        snapshot = row.schema_snapshot or {}
        return cls(
            application=snapshot.get("application") or row.application.name,
            version=snapshot.get("version") or row.version.version,
            schema=snapshot.get("schema") or manifest_from_json(row.version.manifest).data_model.schema,
            statements=tuple(SqlStatement.from_json(s) for s in row.statements),
            warnings=tuple(row.warnings),
            schema_fingerprint=row.schema_fingerprint,
            schema_snapshot=snapshot.get("description") or {},
        )


def generate_sql(*, environment: Any, version: Any, log: StepLog, previous_version: Any = None) -> GeneratedScript:
    """Generate SQL for ``version`` (ApplicationVersion) against ``environment``'s application database.

    ``previous_version``, the version running there now if any, lets a table that the new data model
    dropped be told apart from a table its scripts created (only the first deserves a warning).
    """
    dsn = environment.app_db_dsn()
    if not dsn:
        raise StepFailed(f"{environment.name} has no application database configured: SQL cannot be generated.")
    manifest = manifest_from_json(version.manifest)
    previous = manifest_from_json(previous_version.manifest) if previous_version is not None else None
    return generate_sql_for_dsn(dsn=dsn, manifest=manifest, log=log, previous=previous)


def generate_sql_for_dsn(
    *, dsn: str, manifest: Manifest, log: StepLog, previous: Manifest | None = None
) -> GeneratedScript:
    started = time.monotonic()
    try:
        conn = connect(dsn)
    except Exception as exc:
        raise StepFailed(f"Cannot connect to the application database: {_first_line(exc)}") from None
    try:
        conn.set_session(readonly=True)
        with conn.cursor() as cursor:
            live = read_live_schema(cursor, schema=manifest.data_model.schema, application=manifest.name)
            result = plan_statements(manifest=manifest, live=live, previous=previous, cursor=cursor)
    finally:
        conn.close()
    seconds = time.monotonic() - started
    for warning in result.warnings:
        log.warning(warning)
    for note in result.notes:
        log.info(note)
    ddl = sum(1 for s in result.statements if s.source == DATA_MODEL)
    scripts = len({s.source for s in result.statements if s.kind == "script"})
    log.info(
        f"Generated {len(result.statements)} statements for {manifest.name} {manifest.version} "
        f"({ddl} from the data model, {scripts} scripts) in {seconds * 1000:.0f} ms; "
        f"schema fingerprint {result.schema_fingerprint[:12]}."
    )
    return result


def plan_statements(
    *, manifest: Manifest, live: LiveSchema, previous: Manifest | None = None, cursor: Any = None
) -> GeneratedScript:
    """The pure diff: statements, warnings and errors from a data model and a live schema.

    ``cursor`` is used only to ask whether a table has rows when that decides an error.
    """
    diff = _Diff(manifest=manifest, live=live, previous=previous, cursor=cursor)
    diff.run()
    if diff.errors:
        raise StepFailed(
            f"SQL for {manifest.name} {manifest.version} cannot be generated: " + " ".join(diff.errors),
            detail={"errors": diff.errors, "warnings": diff.warnings},
        )
    return GeneratedScript(
        application=manifest.name,
        version=manifest.version,
        schema=manifest.data_model.schema,
        statements=tuple(diff.statements),
        warnings=tuple(diff.warnings),
        notes=tuple(diff.notes),
        schema_fingerprint=live.fingerprint,
        schema_snapshot=live.description(),
    )


class _Diff:
    def __init__(self, *, manifest: Manifest, live: LiveSchema, previous: Manifest | None, cursor: Any) -> None:
        self.manifest = manifest
        self.live = live
        self.previous = previous
        self.cursor = cursor
        self.schema = manifest.data_model.schema
        self.statements: list[SqlStatement] = []
        self.warnings: list[str] = []
        self.errors: list[str] = []
        self.notes: list[str] = []

    def add(self, sql: str, kind: str, flags: tuple[str, ...] = ()) -> None:
        self.statements.append(SqlStatement(sql=sql, kind=kind, source=DATA_MODEL, flags=flags))

    def qualified(self, table: str) -> str:
        return f"{q(self.schema)}.{q(table)}"

    def run(self) -> None:
        model = self.manifest.data_model
        if not self.live.schema_exists:
            self.add(f"CREATE SCHEMA {q(self.schema)}", "create_schema")
        for table in model.tables:
            live_table = self.live.tables.get(table.name)
            if live_table is None:
                self.create_table(table)
            else:
                self.alter_table(table, live_table)
        declared = {t.name for t in model.tables}
        before = {t.name for t in self.previous.data_model.tables} if self.previous else set()
        for name in sorted(set(self.live.tables) - declared):
            if name in before:
                self.warnings.append(
                    f"Table {self.schema}.{name} was removed from the data model: it is kept (never dropped by a deployment)."
                )
            else:
                self.notes.append(
                    f"Table {self.schema}.{name} is not in the data model (created by a script?): left as is."
                )
        self.scripts()

    # --- tables ----------------------------------------------------------------------

    def create_table(self, table: Table) -> None:
        lines = [column_sql(c) for c in table.columns]
        if table.primary_key:
            lines.append(
                f"CONSTRAINT {q(table.name + '_pkey')} PRIMARY KEY ({', '.join(q(c) for c in table.primary_key)})"
            )
        self.add(f"CREATE TABLE {self.qualified(table.name)} (\n    " + ",\n    ".join(lines) + "\n)", "create_table")
        for index in table.indexes:
            # On a table created in this same transaction an index costs nothing: no flags.
            self.add(index_sql(self.schema, table.name, index), "create_index")

    def alter_table(self, table: Table, live_table) -> None:
        where = f"{self.schema}.{table.name}"
        for column in table.columns:
            live_column = live_table.columns.get(column.name)
            if live_column is None:
                self.add_column(table, column)
            else:
                self.change_column(table, column, live_column)
        for name in live_table.columns:
            if table.column(name) is None:
                self.warnings.append(
                    f"Column {where}.{name} is not in the data model any more: it is kept (never dropped by a deployment)."
                )
        live_pk = next((i for i in live_table.indexes.values() if i.primary), None)
        if table.primary_key and (live_pk is None or live_pk.columns != table.primary_key):
            self.warnings.append(
                f"Primary key of {where} differs from the data model ({', '.join(table.primary_key)}): not changed."
            )
        for index in table.indexes:
            live_index = live_table.indexes.get(index.name)
            if live_index is None:
                self.add(index_sql(self.schema, table.name, index), "create_index", (BLOCKS_WRITES,))
            elif live_index.columns != index.columns or live_index.unique != index.unique:
                self.warnings.append(
                    f"Index {self.schema}.{index.name} exists on ({', '.join(live_index.columns)})"
                    f"{' unique' if live_index.unique else ''}, not as in the data model: not changed."
                )

    def add_column(self, table: Table, column: Column) -> None:
        where = f"{self.schema}.{table.name}.{column.name}"
        if not column.nullable and column.default is None and not column.identity:
            if self.cursor is not None and table_has_rows(self.cursor, schema=self.schema, table=table.name):
                self.errors.append(
                    f"New column {where} is NOT NULL without a default, and {self.schema}.{table.name} has rows: "
                    "give it a default, or make it nullable and fill it with a script."
                )
                return
            self.warnings.append(
                f"New column {where} is NOT NULL without a default: the running version cannot insert into "
                f"{self.schema}.{table.name} until the switch."
            )
        flags = [LOCK_HEAVY]
        if column.identity or (column.default in VOLATILE_DEFAULTS):
            flags.append(REWRITES_TABLE)
        self.add(
            f"ALTER TABLE {self.qualified(table.name)} ADD COLUMN {column_sql(column)}", "add_column", tuple(flags)
        )

    def change_column(self, table: Table, column: Column, live: LiveColumn) -> None:
        where = f"{self.schema}.{table.name}.{column.name}"
        if live.type != column.type:
            verdict = widening(live.type, column.type)
            if verdict is None:
                narrower = widening(column.type, live.type) is not None
                self.warnings.append(
                    f"Column {where} is {live.type} in the database and {column.type} in the data model: "
                    f"{'a narrowing' if narrower else 'an incompatible'} change is never generated."
                )
            else:
                flags = (LOCK_HEAVY, REWRITES_TABLE) if verdict == "rewrite" else (LOCK_HEAVY,)
                self.add(
                    f"ALTER TABLE {self.qualified(table.name)} ALTER COLUMN {q(column.name)} TYPE {column.type}",
                    "widen_column",
                    flags,
                )
        if live.not_null and column.nullable and not live.identity:
            self.add(
                f"ALTER TABLE {self.qualified(table.name)} ALTER COLUMN {q(column.name)} DROP NOT NULL",
                "relax_not_null",
                (LOCK_HEAVY,),
            )
        elif not live.not_null and not column.nullable:
            self.warnings.append(
                f"Column {where} is NOT NULL in the data model but nullable in the database: not tightened "
                "(the running version may write NULLs)."
            )
        if column.default is not None and live.default is None and not live.identity:
            self.add(
                f"ALTER TABLE {self.qualified(table.name)} ALTER COLUMN {q(column.name)} SET DEFAULT {column.default}",
                "set_default",
                (LOCK_HEAVY,),
            )
        if column.identity != bool(live.identity):
            self.warnings.append(
                f"Column {where}: identity differs between the data model and the database; not changed."
            )

    # --- hand-written scripts ------------------------------------------------------------

    def scripts(self) -> None:
        pending = []
        for script in self.manifest.scripts:
            applied = self.live.applied_scripts.get(script.name)
            if applied is None:
                pending.append(script)
            elif applied != script.sha256:
                self.errors.append(
                    f"Script {script.name} was already applied in this database with other content "
                    f"(sha256 {applied[:12]}, now {script.sha256[:12]}): an applied script must never change; "
                    "add a new script instead."
                )
        if not pending:
            return
        if not self.live.history_exists:
            self.statements.append(SqlStatement(sql=HISTORY_DDL, kind="history_table", source=HISTORY))
        for script in pending:
            statements = split_script(script.sql)
            for number, statement in enumerate(statements, start=1):
                verdict = classify(statement.sql)
                if verdict.refused:
                    self.errors.append(f"{script.name}, line {statement.line} (statement {number}): {verdict.refused}.")
                    continue
                for flag in verdict.flags:
                    if flag in (DESTRUCTIVE, REWRITES_TABLE):
                        self.warnings.append(
                            f"{script.name}, line {statement.line}: {verdict.kind.upper()} {FLAG_LABELS[flag]}."
                        )
                self.statements.append(
                    SqlStatement(
                        sql=statement.sql, kind="script", source=script.name, flags=verdict.flags, line=statement.line
                    )
                )
            if not statements:
                self.notes.append(f"{script.name} holds no statement: it is only recorded as applied.")
            self.statements.append(
                SqlStatement(
                    sql=(
                        f"INSERT INTO {HISTORY_SCHEMA}.{HISTORY_TABLE} (application, script, sha256, version) VALUES "
                        f"({literal(self.manifest.name)}, {literal(script.name)}, {literal(script.sha256)}, "
                        f"{literal(self.manifest.version)})"
                    ),
                    kind="record_script",
                    source=script.name,
                    flags=(TOUCHES_ROWS,),
                )
            )


def widening(old: str, new: str) -> str | None:
    """'in_place' or 'rewrite' when ``old`` -> ``new`` keeps every existing value; None otherwise."""
    if old in INTEGER_RANK and new in INTEGER_RANK:
        return "rewrite" if INTEGER_RANK[new] > INTEGER_RANK[old] else None
    old_varchar, new_varchar = VARCHAR_RE.match(old), VARCHAR_RE.match(new)
    if old_varchar and (new == "text" or new == "character varying"):
        return "in_place"
    if old_varchar and new_varchar:
        return "in_place" if int(new_varchar.group(1)) > int(old_varchar.group(1)) else None
    old_numeric, new_numeric = NUMERIC_RE.match(old), NUMERIC_RE.match(new)
    if old_numeric and new == "numeric":
        return "in_place"
    if old_numeric and new_numeric:
        (p1, s1), (p2, s2) = (map(int, old_numeric.groups())), (map(int, new_numeric.groups()))
        if s2 < s1 or p2 - s2 < p1 - s1 or (p1, s1) == (p2, s2):
            return None
        # Only a larger precision at the same scale leaves the stored values untouched.
        return "in_place" if s2 == s1 else "rewrite"
    if old in INTEGER_RANK and (new == "numeric" or NUMERIC_RE.match(new)):
        match = NUMERIC_RE.match(new)
        digits = {"smallint": 5, "integer": 10, "bigint": 19}[old]
        if match is None or int(match.group(1)) - int(match.group(2)) >= digits:
            return "rewrite"
        return None
    if old == "real" and new == "double precision":
        return "rewrite"
    return None


def column_sql(column: Column) -> str:
    parts = [q(column.name), column.type]
    if column.identity:
        parts.append("GENERATED BY DEFAULT AS IDENTITY")
    elif column.default is not None:
        parts.append(f"DEFAULT {column.default}")
    if not column.nullable:
        parts.append("NOT NULL")
    return " ".join(parts)


def index_sql(schema: str, table: str, index) -> str:
    unique = "UNIQUE " if index.unique else ""
    return f"CREATE {unique}INDEX {q(index.name)} ON {q(schema)}.{q(table)} ({', '.join(q(c) for c in index.columns)})"


def q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    message = text[0] if text else exc.__class__.__name__
    return re.sub(r"(password\s*=\s*)\S+", r"\1***", message, flags=re.I)
