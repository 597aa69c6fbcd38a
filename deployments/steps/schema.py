"""The live schema of an application in a target database: read, fingerprint, compare, recreate.

One query on ``pg_catalog`` reads everything about an application's schema (tables, columns,
indexes, constraints, sequences, views, functions): ~40 ms for 200 tables where
``information_schema`` costs several times more. The canonical description it builds is what the
fingerprint hashes, what drift is explained with, and what the rehearsal recreates in a scratch
database.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import psycopg2
from psycopg2 import sql as pgsql

HISTORY_SCHEMA = "lifetime_meta"
HISTORY_TABLE = "applied_scripts"
HISTORY_DDL = (
    f"CREATE SCHEMA IF NOT EXISTS {HISTORY_SCHEMA};\n"
    f"CREATE TABLE IF NOT EXISTS {HISTORY_SCHEMA}.{HISTORY_TABLE} (\n"
    "    application text NOT NULL,\n"
    "    script text NOT NULL,\n"
    "    sha256 character(64) NOT NULL,\n"
    "    version text NOT NULL,\n"
    "    applied_at timestamp with time zone NOT NULL DEFAULT now(),\n"
    "    PRIMARY KEY (application, script)\n"
    ")"
)

SCHEMA_QUERY = r"""
select
  exists(select 1 from pg_namespace where nspname = %(schema)s) as schema_exists,
  to_regclass(%(history)s) is not null as history_exists,
  coalesce((select json_agg(json_build_object(
      'name', c.relname,
      'rows', c.reltuples,
      'columns', (select coalesce(json_agg(json_build_array(
                      a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                      pg_get_expr(d.adbin, d.adrelid), a.attidentity::text) order by a.attnum), '[]')
                  from pg_attribute a
                  left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
                  where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped),
      'indexes', (select coalesce(json_agg(json_build_array(
                      i.relname, {index_definition}, x.indisunique, x.indisprimary,
                      (select coalesce(json_agg(a.attname order by k.ord), '[]')
                         from unnest(x.indkey::int2[]) with ordinality k(attnum, ord)
                         join pg_attribute a on a.attrelid = x.indrelid and a.attnum = k.attnum),
                      am.amname || ' ' || x.indkey::text || ' ' || x.indclass::text || ' ' || x.indoption::text
                        || coalesce(' ' || pg_get_expr(x.indexprs, x.indrelid), '')
                        || coalesce(' where ' || pg_get_expr(x.indpred, x.indrelid), '')
                  ) order by i.relname), '[]')
                  from pg_index x join pg_class i on i.oid = x.indexrelid join pg_am am on am.oid = i.relam
                  where x.indrelid = c.oid and i.relname not like 'lifetime\_prep\_%%'),
      'constraints', (select coalesce(json_agg(json_build_array(
                          k.conname, k.contype::text, pg_get_constraintdef(k.oid)) order by k.conname), '[]')
                      from pg_constraint k where k.conrelid = c.oid)
    ) order by c.relname)
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = %(schema)s and c.relkind in ('r', 'p')), '[]') as tables,
  coalesce((select json_agg(json_build_array(c.relname, c.relkind::text,
                case when c.relkind in ('v', 'm') then pg_get_viewdef(c.oid) end) order by c.relname)
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = %(schema)s and c.relkind in ('v', 'm', 'S')
      and not exists (select 1 from pg_depend dep where dep.objid = c.oid and dep.deptype = 'i')), '[]') as others,
  coalesce((select json_agg(json_build_array(
                p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
                pg_get_functiondef(p.oid)) order by p.proname, pg_get_function_identity_arguments(p.oid))
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = %(schema)s and p.prokind in ('f', 'p')), '[]') as functions,
  coalesce((select json_agg(e.extname order by e.extname) from pg_extension e where e.extname <> 'plpgsql'), '[]')
    as extensions
"""
# Indexes named lifetime_prep_* are the ones Prepare builds ahead of the window (stages/prepared_indexes.py):
# they are the console's, not the application's schema, and never count as drift.
PREPARED_INDEX_PREFIX = "lifetime_prep_"
# pg_get_indexdef() is the costliest part of the read (a third of it for 600 indexes): the
# fingerprint and the diff use the index's structure; only the rehearsal's copy needs the DDL.
INDEX_DEFINITION = "pg_get_indexdef(x.indexrelid)"


@dataclasses.dataclass(frozen=True)
class LiveColumn:
    name: str
    type: str
    not_null: bool
    default: str | None
    identity: str  # '' none, 'a' always, 'd' by default


@dataclasses.dataclass(frozen=True)
class LiveIndex:
    name: str
    definition: str  # CREATE INDEX ..., only when read with definitions=True
    unique: bool
    primary: bool
    columns: tuple[str, ...]
    structure: str  # access method, keys, operator classes, options, expressions, predicate


@dataclasses.dataclass(frozen=True)
class LiveTable:
    name: str
    estimated_rows: float
    columns: dict[str, LiveColumn]
    indexes: dict[str, LiveIndex]
    constraints: tuple[tuple[str, str, str], ...]  # (name, type letter, definition)


@dataclasses.dataclass(frozen=True)
class LiveSchema:
    """What an application's schema looks like in a database right now."""

    application: str
    schema: str
    schema_exists: bool
    history_exists: bool
    tables: dict[str, LiveTable]
    others: tuple[tuple[str, str, str | None], ...]  # views, materialized views, sequences
    functions: tuple[tuple[str, str], ...]
    extensions: tuple[str, ...]
    applied_scripts: dict[str, str]  # script name -> sha256

    def description(self) -> dict[str, Any]:
        """Canonical, JSON-able: what the fingerprint hashes. Row estimates are left out on purpose:
        they move with every autovacuum and are not the schema."""
        return {
            "schema": self.schema,
            "exists": self.schema_exists,
            "tables": {
                t.name: {
                    "columns": {c.name: [c.type, c.not_null, c.default, c.identity] for c in t.columns.values()},
                    "indexes": {i.name: [i.unique, i.primary, i.structure] for i in t.indexes.values()},
                    "constraints": {name: definition for name, _, definition in t.constraints},
                }
                for t in self.tables.values()
            },
            "objects": {name: [kind, definition] for name, kind, definition in self.others},
            "functions": {signature: hashlib.sha256(body.encode()).hexdigest() for signature, body in self.functions},
            "applied_scripts": dict(sorted(self.applied_scripts.items())),
        }

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.description())


def fingerprint_of(description: dict[str, Any]) -> str:
    canonical = json.dumps(description, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def connect(dsn: str, *, application_name: str = "lifetime-console") -> psycopg2.extensions.connection:
    return psycopg2.connect(dsn, connect_timeout=10, application_name=application_name)


def read_live_schema(cursor: Any, *, schema: str, application: str, definitions: bool = False) -> LiveSchema:
    """Read ``schema`` and ``application``'s applied scripts through ``cursor`` (any transaction).

    ``definitions`` adds each index's CREATE INDEX statement, which only ``recreate_statements`` needs.
    """
    return read_live_schemas(cursor, [(schema, application)], definitions=definitions)[0]


# The same catalog read for several schemas at once: one round trip whatever the plan's size.
SCHEMAS_QUERY = (
    "select wanted.ord, read.* from unnest(%(schemas)s::text[]) with ordinality as wanted(name, ord) "
    "cross join lateral ({query}) as read order by wanted.ord"
)
HISTORIES_QUERY = (
    f"select application, script, sha256 from {HISTORY_SCHEMA}.{HISTORY_TABLE} "
    "where application = any(%s) order by application, script"
)


def read_live_schemas(cursor: Any, wanted: Sequence[tuple[str, str]], *, definitions: bool = False) -> list[LiveSchema]:
    """Read every ``(schema, application)`` of ``wanted`` in one catalog query (and one query of the
    applied scripts when the history table exists), in the order given."""
    if not wanted:
        return []
    inner = SCHEMA_QUERY.replace("{index_definition}", INDEX_DEFINITION if definitions else "''").replace(
        "%(schema)s", "wanted.name"
    )
    cursor.execute(
        SCHEMAS_QUERY.replace("{query}", inner),
        {"schemas": [schema for schema, _ in wanted], "history": f"{HISTORY_SCHEMA}.{HISTORY_TABLE}"},
    )
    rows = cursor.fetchall()
    applied: dict[str, dict[str, str]] = {application: {} for _, application in wanted}
    if any(row[2] for row in rows):
        # A second statement only when the history table exists: a query cannot name a table
        # that may not be there.
        cursor.execute(HISTORIES_QUERY, [sorted(applied)])
        for application, name, sha in cursor.fetchall():
            applied[application][name] = sha.strip()
    return [
        _live_schema(row[1:], schema=schema, application=application, applied=applied[application])
        for (schema, application), row in zip(wanted, rows, strict=True)
    ]


def _live_schema(row: Sequence[Any], *, schema: str, application: str, applied: dict[str, str]) -> LiveSchema:
    schema_exists, history_exists, tables_raw, others_raw, functions_raw, extensions = row
    tables = {}
    for raw in tables_raw:
        tables[raw["name"]] = LiveTable(
            name=raw["name"],
            estimated_rows=raw["rows"],
            columns={
                c[0]: LiveColumn(name=c[0], type=c[1], not_null=c[2], default=c[3], identity=c[4])
                for c in raw["columns"]
            },
            indexes={
                i[0]: LiveIndex(
                    name=i[0], definition=i[1], unique=i[2], primary=i[3], columns=tuple(i[4]), structure=i[5]
                )
                for i in raw["indexes"]
            },
            constraints=tuple(tuple(k) for k in raw["constraints"]),
        )
    return LiveSchema(
        application=application,
        schema=schema,
        schema_exists=schema_exists,
        history_exists=history_exists,
        tables=tables,
        others=tuple(tuple(o) for o in others_raw),
        functions=tuple(tuple(f) for f in functions_raw),
        extensions=tuple(extensions),
        applied_scripts=dict(applied) if history_exists else {},
    )


def read_schema_from_dsn(dsn: str, *, schema: str, application: str, definitions: bool = False) -> LiveSchema:
    conn = connect(dsn)
    try:
        conn.set_session(readonly=True)
        with conn.cursor() as cursor:
            return read_live_schema(cursor, schema=schema, application=application, definitions=definitions)
    finally:
        conn.close()


def table_has_rows(cursor: Any, *, schema: str, table: str) -> bool:
    # reltuples is an estimate (and -1 before the first analyze): ask the table itself.
    cursor.execute(
        pgsql.SQL("select exists(select 1 from {}.{})").format(pgsql.Identifier(schema), pgsql.Identifier(table))
    )
    return bool(cursor.fetchone()[0])


def describe_drift(before: dict[str, Any], after: dict[str, Any], *, limit: int = 20) -> list[str]:
    """Human lines saying what differs between two descriptions, e.g. for a refused Continue."""
    lines: list[str] = []

    schema = after.get("schema") or before.get("schema") or ""

    def walk(old: Any, new: Any, path: tuple[str, ...]) -> None:
        if len(lines) >= limit or old == new:
            return
        if isinstance(old, dict) and isinstance(new, dict) and len(path) < 4:
            for key in sorted(set(old) | set(new)):
                where = (*path, str(key))
                if key not in old:
                    lines.append(f"{_drift_label(schema, where)} appeared")
                elif key not in new:
                    lines.append(f"{_drift_label(schema, where)} disappeared")
                else:
                    walk(old[key], new[key], where)
        else:
            lines.append(f"{_drift_label(schema, path)} was {_short(old)}, now {_short(new)}")

    walk(before, after, ())
    return lines[:limit]


def _drift_label(schema: str, path: tuple[str, ...]) -> str:
    """Words an operator reads at 02:00: "column hr_core.employee.salary", "index employee_x_idx on ..."."""
    if len(path) >= 4 and path[0] == "tables":
        table, part, name = path[1], path[2], path[3]
        if part == "columns":
            return f"column {schema}.{table}.{name}"
        if part == "indexes":
            return f"index {schema}.{name} on {schema}.{table}"
        if part == "constraints":
            return f"constraint {name} on {schema}.{table}"
    if len(path) >= 2 and path[0] == "tables":
        return f"table {schema}.{path[1]}" + (f" ({path[2]})" if len(path) > 2 else "")
    if len(path) >= 2 and path[0] == "objects":
        return f"view or sequence {schema}.{path[1]}"
    if len(path) >= 2 and path[0] == "functions":
        return f"function {schema}.{path[1]}"
    if len(path) >= 2 and path[0] == "applied_scripts":
        return f"applied script {path[1]}"
    if path == ("exists",):
        return f"schema {schema}"
    return ".".join(path) or "the schema"


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 120 else text[:117] + "..."


def recreate_statements(live: LiveSchema) -> list[str]:
    """DDL that recreates ``live`` (and the history table with its rows) in an empty database.

    Used by the rehearsal instead of pg_dump, so that it works wherever the console runs (no
    client binaries of the server's exact version needed). Triggers, grants and comments are not
    copied: they do not change whether a script's statements are valid.
    """
    if any(not i.definition for t in live.tables.values() for i in t.indexes.values()):
        raise ValueError("recreate_statements needs a schema read with definitions=True")
    q = _quote
    statements = [f"CREATE EXTENSION IF NOT EXISTS {q(name)}" for name in live.extensions]
    statements.append(HISTORY_DDL)
    for script, sha in sorted(live.applied_scripts.items()):
        statements.append(
            f"INSERT INTO {HISTORY_SCHEMA}.{HISTORY_TABLE} (application, script, sha256, version) "
            f"VALUES ({_literal(live.application)}, {_literal(script)}, {_literal(sha)}, '')"
        )
    if not live.schema_exists:
        return statements
    schema = q(live.schema)
    statements.append(f"CREATE SCHEMA {schema}")
    for name, kind, _ in live.others:
        if kind == "S":
            statements.append(f"CREATE SEQUENCE {schema}.{q(name)}")
    foreign_keys = []
    for table in live.tables.values():
        columns = []
        for column in table.columns.values():
            parts = [q(column.name), column.type]
            if column.identity:
                parts.append(
                    "GENERATED ALWAYS AS IDENTITY" if column.identity == "a" else "GENERATED BY DEFAULT AS IDENTITY"
                )
            elif column.default is not None:
                parts.append(f"DEFAULT {column.default}")
            if column.not_null:
                parts.append("NOT NULL")
            columns.append(" ".join(parts))
        statements.append(f"CREATE TABLE {schema}.{q(table.name)} (\n    " + ",\n    ".join(columns) + "\n)")
        constraint_names = set()
        for name, letter, definition in table.constraints:
            constraint_names.add(name)
            statement = f"ALTER TABLE {schema}.{q(table.name)} ADD CONSTRAINT {q(name)} {definition}"
            (foreign_keys if letter == "f" else statements).append(statement)
        for index in table.indexes.values():
            if index.name not in constraint_names:
                statements.append(index.definition)
    statements.extend(foreign_keys)
    for _, body in live.functions:
        statements.append(body)
    for name, kind, definition in live.others:
        if kind in ("v", "m"):
            keyword = "MATERIALIZED VIEW" if kind == "m" else "VIEW"
            statements.append(f"CREATE {keyword} {schema}.{q(name)} AS {definition.rstrip().rstrip(';')}")
    return statements


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
