"""An environment's application database connection: which database it reaches, with which rights.

A connection is refused when it reaches the console's own database or another environment's
application database. What is compared is what the server says it is: the cluster's system
identifier (``pg_control_system()``) and the database's OID, never the host names or ports typed,
so another spelling of the same server (an IP address, a socket, a DNS alias) changes nothing.

The role is looked at too: a superuser, a member of one, a role that may create roles (before
PostgreSQL 16 it may grant itself anything) or one that may run programs or read or write files on
the database server lets a deployment's SQL reach far beyond its application database. Such a
connection is refused unless an infra admin confirms it, and the confirmation is audited.

Connection failures get one message whatever the cause at the network level, and take the whole
connect timeout, so that the form does not tell a closed port from a filtered one.
"""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Any

import psycopg2
from django.db import connection as console_connection
from psycopg2.extensions import parse_dsn

CONNECT_TIMEOUT_S = 5
# libpq parameters a connection may use. Others read files or services of the console's own host
# (passfile, service, sslkey, sslcert...) or change what the server runs (options).
ALLOWED_PARAMETERS = frozenset(
    {
        "host",
        "hostaddr",
        "port",
        "dbname",
        "user",
        "password",
        "sslmode",
        "connect_timeout",
        "application_name",
        "target_session_attrs",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
    }
)
PRIVILEGED_ROLES = ("pg_execute_server_program", "pg_read_server_files", "pg_write_server_files")

IDENTITY_QUERY = """
select (select system_identifier from pg_control_system())::text || '/' || d.oid::text,
       current_database(), current_setting('server_version'), current_setting('server_version_num')::int,
       current_user
from pg_database d where d.datname = current_database()
"""
RIGHTS_QUERY = """
select r.rolcreaterole,
       exists (select 1 from pg_roles s where s.rolsuper and pg_has_role(current_user, s.oid, 'MEMBER')),
       array(select p from unnest(%s::text[]) p
             where exists (select 1 from pg_roles x where x.rolname = p)
               and pg_has_role(current_user, p, 'MEMBER'))
from pg_roles r where r.rolname = current_user
"""


class ConnectionRefused(Exception):
    """The connection cannot be used; ``message`` says why, without the secret."""

    def __init__(self, message: str, *, privileged: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.privileged = privileged


@dataclasses.dataclass(frozen=True)
class ServerView:
    """What the server says about a connection."""

    identity: str  # "<system identifier>/<database oid>"
    database: str
    version: str
    role: str
    privileges: tuple[str, ...]  # why the role is more than a deployment needs ("" when it is not)


def check_parameters(params: dict[str, str]) -> None:
    unknown = sorted(set(params) - ALLOWED_PARAMETERS)
    if unknown:
        raise ConnectionRefused(
            f"The connection string may not set {', '.join(unknown)}: only host, port, dbname, user, password, "
            "sslmode and connection tuning are accepted."
        )


def _server_answered(exc: Exception) -> bool:
    # libpq reports what the server itself said as FATAL/ERROR; anything else happened on the way.
    return bool(re.search(r"\b(FATAL|ERROR):", str(exc)))


def inspect(dsn: str, *, summary: str, timeout_s: int = CONNECT_TIMEOUT_S) -> ServerView:
    """Connect, ask the server who it is and what the role may do. ConnectionRefused otherwise."""
    try:
        params = parse_dsn(dsn)
    except psycopg2.ProgrammingError:
        raise ConnectionRefused("Malformed connection string.") from None
    check_parameters(params)
    started = time.monotonic()
    try:
        conn = psycopg2.connect(dsn, connect_timeout=timeout_s, application_name="lifetime-console-check")
    except psycopg2.Error as exc:
        if _server_answered(exc):
            raise ConnectionRefused(
                f"Cannot connect to {summary}: the server refused the role, its password or the database."
            ) from None
        # Refused, filtered, unknown host, not PostgreSQL: one answer, after the same time.
        time.sleep(max(0.0, timeout_s - (time.monotonic() - started)))
        raise ConnectionRefused(f"Cannot connect to {summary}: no PostgreSQL server accepted the connection.") from None
    try:
        conn.set_session(readonly=True, autocommit=True)
        with conn.cursor() as cur:
            cur.execute(IDENTITY_QUERY)
            identity, database, version, version_num, role = cur.fetchone()
            cur.execute(RIGHTS_QUERY, [list(PRIVILEGED_ROLES)])
            createrole, superuser, members = cur.fetchone()
    except psycopg2.Error:
        raise ConnectionRefused(f"Connected to {summary}, but the server did not say which database it is.") from None
    finally:
        conn.close()
    privileges = []
    if superuser:
        privileges.append("superuser")
    if createrole and version_num < 160000:
        privileges.append("CREATEROLE (it may grant itself any right on this server)")
    privileges += [f"member of {name}" for name in members or []]
    return ServerView(identity=identity, database=database, version=version, role=role, privileges=tuple(privileges))


def console_identity() -> str:
    """The identity of the console's own database, as its server says."""
    with console_connection.cursor() as cur:
        cur.execute(IDENTITY_QUERY)
        return cur.fetchone()[0]


def identity_of(environment: Any) -> str:
    """An environment's stored identity; for a connection saved before identities were kept, ask its
    server once and keep the answer ("" when it does not answer)."""
    if environment.app_db_identity or not environment.has_app_db:
        return environment.app_db_identity
    try:
        view = inspect(environment.app_db_dsn(), summary=environment.app_db_summary, timeout_s=2)
    except Exception:  # noqa: BLE001 - an unreachable old connection is compared as unknown
        return ""
    type(environment).objects.filter(pk=environment.pk).update(app_db_identity=view.identity)
    return view.identity


def reaches_saved_database(environment: Any) -> str:
    """ "" when the environment's saved connection still reaches the database it reached when it
    was saved (asked again at each Prepare and Continue: a host name can be pointed elsewhere
    after the connection was checked); otherwise the sentence saying it does not."""
    if not environment.has_app_db or not environment.app_db_identity:
        return ""
    try:
        view = inspect(environment.app_db_dsn(), summary=environment.app_db_summary, timeout_s=CONNECT_TIMEOUT_S)
    except ConnectionRefused as exc:
        return exc.message
    if view.identity != environment.app_db_identity:
        return _reaches_another(environment)
    return ""


def reaches_saved_database_on(environment: Any, cursor: Any) -> str:
    """``reaches_saved_database`` asked on a connection already open to the environment's
    application database (Continue checks everything on one connection)."""
    if not environment.has_app_db or not environment.app_db_identity:
        return ""
    cursor.execute(IDENTITY_QUERY)
    if cursor.fetchone()[0] != environment.app_db_identity:
        return _reaches_another(environment)
    return ""


def _reaches_another(environment: Any) -> str:
    return (
        f"the application database connection of {environment.name} now reaches another database than the "
        "one it reached when it was saved: an infra admin must check and save it again"
    )


def refuse_shared(view: ServerView, *, others: Any) -> None:
    """ConnectionRefused when ``view`` is the console's database or one of ``others``' (environments)."""
    if view.identity == console_identity():
        raise ConnectionRefused(
            "This connection reaches the console's own database: an environment's SQL must never run there."
        )
    for other in others:
        if identity_of(other) == view.identity:
            raise ConnectionRefused(
                "This connection reaches another environment's application database: each environment needs "
                "a database of its own."
            )


def privileged_message(view: ServerView) -> str:
    return (
        f"The role {view.role} is more than a deployment needs ({'; '.join(view.privileges)}): a deployment's "
        "SQL could reach the whole database server. Use a role that owns only this application database, or "
        "have an infra admin confirm this role."
    )
