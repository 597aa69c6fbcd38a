"""Fixtures for the catalog, compile and SQL tests: example bundles (small variants) registered
through the catalog service, an artifact store of their own."""

from __future__ import annotations

import functools
from collections.abc import Callable

import psycopg2
import pytest

from core.actors import Actor
from deployments.catalog import services as catalog
from deployments.models import ApplicationVersion
from examples.build import FORMATS, bundle_files, pack

# HR Core's generated code, kept tiny: the benchmarks measure the full size.
TEST_MODULES = 4


@functools.cache
def example_files(app: str, version: str) -> dict[str, bytes]:
    return bundle_files(app, version, modules=TEST_MODULES)


def example_bundle(
    app: str, version: str, changes: dict[str, bytes | None] | None = None, *, fmt: str | None = None
) -> bytes:
    """The example's archive; ``changes`` replace or add (bytes) or remove (None) members by path."""
    files = dict(example_files(app, version))
    for path, data in (changes or {}).items():
        if data is None:
            files.pop(path, None)
        else:
            files[path] = data
    return pack(files, fmt or FORMATS[app])


@pytest.fixture(autouse=True)
def artifact_store(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    return settings.ARTIFACT_ROOT


@pytest.fixture
def register(db, admin_user) -> Callable[..., ApplicationVersion]:
    def register(app: str, version: str, changes: dict[str, bytes | None] | None = None) -> ApplicationVersion:
        return catalog.register_bundle(data=example_bundle(app, version, changes), actor=Actor.person(admin_user))

    return register


class TargetDatabase:
    """Direct access to an environment's application database, to look at what a user would check."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        conn = psycopg2.connect(self.dsn)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.commit()
            conn.close()

    def execute(self, sql: str) -> None:
        self.query(sql)

    def column_type(self, schema: str, table: str, column: str) -> str | None:
        rows = self.query(
            "select format_type(a.atttypid, a.atttypmod) from pg_attribute a join pg_class c on c.oid = a.attrelid "
            "join pg_namespace n on n.oid = c.relnamespace where n.nspname = %s and c.relname = %s and a.attname = %s "
            "and not a.attisdropped",
            [schema, table, column],
        )
        return rows[0][0] if rows else None

    def index_exists(self, schema: str, name: str) -> bool:
        return bool(self.query("select 1 from pg_indexes where schemaname = %s and indexname = %s", [schema, name]))

    def applied_scripts(self, application: str) -> list[str]:
        if not self.query("select to_regclass('lifetime_meta.applied_scripts')")[0][0]:
            return []
        rows = self.query(
            "select script from lifetime_meta.applied_scripts where application = %s order by script", [application]
        )
        return [r[0] for r in rows]


@pytest.fixture
def target(landscape) -> TargetDatabase:
    return TargetDatabase(landscape["Test"].app_db_dsn())
