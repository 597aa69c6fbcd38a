"""PostgreSQL's own parser for splitting and checking; one transaction for a plan's SQL; the
rehearsal on the console's own server; the estimate from the target's sizes; indexes built at
Prepare. On real PostgreSQL: the landscape's application databases, the rehearsal server that
scripts/bootstrap.sh starts, and a target cluster started by a test with every statement logged."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg2
import pytest
import sqlparse

from core.actors import Actor
from deployments.catalog.bundles import BundleRefused
from deployments.models import ApplicationVersion
from deployments.statements.parse import parse_script, split_statements
from deployments.steps import ListLog, StepFailed
from deployments.steps.sql import GeneratedScript, SqlStatement, generate_sql
from deployments.steps.sql_execute import RehearsalServer, rehearse_sql
from deployments.steps.sql_window import PlannedScript, TransactionEnded, execute_plan_sql
from environments import services as env_services
from tests.catalog.test_sql import deploy_sql, fingerprint

# Scripts a tokenizer and PostgreSQL split differently. Each inserts markers into t(v): run whole
# by the server (one simple query) and statement by statement, the table must end the same.
TRICKY = {
    "nested comments": "insert into t (v) values ('a'); /* outer /* inner */ ; insert into t (v) values ('hidden'); */ "
    "insert into t (v) values ('b');",
    "E'' strings": "insert into t (v) values (E'it\\'s; one'); insert into t (v) values ('two');",
    "backslash in a standard string": "insert into t (v) values ('C:\\dir\\'); insert into t (v) values ('x;y');",
    "dollar quotes with tags": "insert into t (v) values ($a$ $$ ; $b$ ; $a$); insert into t (v) values ($$;$$);",
    "comment after the last statement": "insert into t (v) values ('only'); -- the end; really\n",
}


@pytest.mark.parametrize("name", list(TRICKY))
def test_scripts_are_split_exactly_as_the_server_runs_them(name, app_databases):
    script = TRICKY[name]
    dsn = app_databases.create()
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cursor:
            cursor.execute("show standard_conforming_strings")
            assert cursor.fetchone()[0] == "on"
            cursor.execute("create table t (n serial, v text)")
            cursor.execute(script)  # the server's own split: one simple query
            cursor.execute("select v from t order by n")
            whole = cursor.fetchall()
            cursor.execute("truncate t restart identity")
            for statement, _line in split_statements(script):
                cursor.execute(statement)  # one statement per execute(), as Continue sends them
            cursor.execute("select v from t order by n")
            assert cursor.fetchall() == whole
    finally:
        conn.rollback()
        conn.close()


def test_the_tokenizer_and_the_parser_disagree_on_these_scripts():
    # Why sqlparse may no longer split: it sees other statements than the server does.
    for name in ("nested comments", "backslash in a standard string"):
        ours = len(split_statements(TRICKY[name]))
        theirs = len([s for s in sqlparse.split(TRICKY[name]) if s.strip()])
        assert ours != theirs, name


@pytest.mark.parametrize(
    ("script", "rule", "line"),
    [
        ("select 1;\nselect E'it\\'s'; commit; select 1;\n", "transaction-control", 2),
        ("select 'C:\\dir\\';\nrollback;\n", "transaction-control", 2),
        ("savepoint a;\n", "transaction-control", 1),
        ("prepare transaction 'x';\n", "transaction-control", 1),
        ("vacuum hr_core.employee;\n", "not-in-transaction", 1),
        ("create index concurrently i on hr_core.employee (email);\n", "not-in-transaction", 1),
        ("copy hr_core.employee to program 'touch /tmp/x';\n", "copy-file-or-program", 1),
        ("copy hr_core.employee from '/etc/passwd';\n", "copy-file-or-program", 1),
        ("copy hr_core.employee from stdin;\n", "copy-needs-client", 1),
        ("select pg_read_file('/etc/passwd');\n", "server-files", 1),
        ("select lo_import('/etc/passwd');\n", "large-object-files", 1),
        ("select lo_export(1, '/tmp/x');\n", "large-object-files", 1),
        ("create extension dblink;\n", "foreign-data", 1),
        ("select * from dblink('host=x', 'select 1') as t(a int);\n", "foreign-data", 1),
        ("create server s foreign data wrapper postgres_fdw;\n", "foreign-data", 1),
        ("alter system set work_mem = '1GB';\n", "alter-system", 1),
        ("create role intruder superuser;\n", "roles", 1),
        ("set role postgres;\n", "roles", 1),
        ("set session authorization postgres;\n", "roles", 1),
        ("select set_config('role', 'postgres', false);\n", "roles", 1),
        ("set statement_timeout = 0;\n", "session-settings", 1),
        ("select pg_terminate_backend(pid) from pg_stat_activity;\n", "other-backends", 1),
        ("select pg_cancel_backend(1);\n", "other-backends", 1),
        ("do $$ begin perform pg_terminate_backend(1); end $$;\n", "other-backends", 1),
        ("create function f() returns int language c as 'x', 'y';\n", "untrusted-code", 1),
        ("select pg_reload_conf();\n", "server-administration", 1),
    ],
)
def test_every_statement_that_reaches_outside_is_refused_at_registration_with_its_rule(
    landscape, register, script, rule, line
):
    register("hr_core", "1.0.0")
    with pytest.raises(BundleRefused) as caught:
        register("hr_core", "1.1.0", {"sql/003_outside.sql": script.encode()})
    assert f"sql/003_outside.sql, line {line}" in caught.value.message
    assert f"rule {rule}:" in caught.value.message
    assert not ApplicationVersion.objects.filter(application__name="hr_core", version="1.1.0").exists()


def test_a_version_keeps_its_parsed_scripts_and_the_version_page_shows_them(landscape, register, client, admin_user):
    version = register("hr_core", "1.1.0")
    analysis = version.script_analysis
    assert analysis["parser"].startswith("pglast ")
    script = next(s for s in analysis["scripts"] if s["name"] == "sql/002_full_name.sql")
    assert [s["node"] for s in script["statements"]] == ["CreateFunctionStmt", "CommentStmt"]
    client.force_login(admin_user)
    page = client.get(f"/applications/versions/{version.key}/").content.decode()
    assert "Split and classified at registration by pglast" in page and "CREATE FUNCTION" in page


def _statement(sql: str, source: str = "sql/009_x.sql", line: int = 1) -> SqlStatement:
    return SqlStatement(sql=sql, kind="script", source=source, line=line)


def _script(environment, application: str, statements: list[SqlStatement]) -> GeneratedScript:
    fp = fingerprint(environment, application)
    from deployments.steps.schema import read_schema_from_dsn

    live = read_schema_from_dsn(environment.app_db_dsn(), schema=application, application=application)
    return GeneratedScript(
        application=application,
        version="9.9.9",
        schema=application,
        statements=tuple(statements),
        warnings=(),
        schema_fingerprint=fp,
        schema_snapshot=live.description(),
    )


def _execute(environment, planned, **kwargs):
    return execute_plan_sql(
        dsn=environment.app_db_dsn(),
        where=environment.name,
        planned=planned,
        log=kwargs.pop("log", ListLog()),
        lock_timeout_ms=kwargs.pop("lock_timeout_ms", 2000),
        statement_timeout_ms=60000,
        **kwargs,
    )


def test_a_script_built_to_commit_early_and_then_fail_leaves_the_target_as_before(landscape, register, target):
    env = landscape["Test"]
    deploy_sql(env, register("hr_core", "1.0.0"))
    before = fingerprint(env)
    rows = target.query("select code, name from hr_core.department order by code")
    # Even handed to the executor directly (past registration and Prepare), a COMMIT hidden where a
    # tokenizer would not see it never reaches the server: the parser looks at every statement again.
    sneaky = "update hr_core.department set name = 'x'; select E'it\\'s'; commit; select 1"
    script = _script(env, "hr_core", [_statement(sneaky), _statement("select 1/0", line=2)])
    log = ListLog()
    with pytest.raises(StepFailed) as caught:
        _execute(env, [PlannedScript(script)], log=log)
    assert "statements where one was expected" in caught.value.message or "transaction-control" in caught.value.message
    assert fingerprint(env) == before
    assert target.query("select code, name from hr_core.department order by code") == rows


def test_a_transaction_ended_by_a_statement_is_caught_before_commit_and_said_as_it_is(landscape, register, target):
    env = landscape["Test"]
    deploy_sql(env, register("hr_core", "1.0.0"))
    script = _script(
        env,
        "hr_core",
        [
            _statement("update hr_core.department set name = name || ' (1)'", line=1),
            _statement("update hr_core.department set name = name || ' (2)'", line=2),
        ],
    )

    def end_transaction(number, cursor):  # the injected fault: something ends the transaction
        if number == 1:
            cursor.execute("COMMIT")

    with pytest.raises(TransactionEnded) as caught:
        _execute(env, [PlannedScript(script)], after_statement=end_transaction)
    message = caught.value.message
    assert "ended by one of its statements before the console could commit it" in message
    assert "hr_core #1 (sql/009_x.sql)" in message and "Check the target" in message
    # What the fault committed is there; what ran after it was rolled back by the console.
    assert {name for (name,) in target.query("select name from hr_core.department")} == {
        "Engineering (1)",
        "Operations; Facilities (1)",
        "Human Resources (1)",
    }


def test_a_fence_that_refuses_right_before_commit_leaves_the_target_as_before(landscape, register, target):
    """The stage attempt was declared lost while its SQL ran: the console's fence, checked right
    before COMMIT, rolls the whole transaction back."""
    env = landscape["Test"]
    deploy_sql(env, register("hr_core", "1.0.0"))
    script = _script(env, "hr_core", [_statement("create table hr_core.fenced_table (id int)")])
    before = fingerprint(env, "hr_core")

    class Lost(Exception):
        pass

    def fence() -> None:
        raise Lost("a newer attempt took over")

    with pytest.raises(Lost):
        _execute(env, [PlannedScript(script)], before_commit=fence)
    assert target.query("select to_regclass('hr_core.fenced_table')") == [(None,)]
    assert fingerprint(env, "hr_core") == before


def test_all_of_a_plans_sql_runs_in_one_transaction_across_applications(landscape, register, target):
    env = landscape["Test"]
    deploy_sql(env, register("hr_core", "1.0.0"))
    deploy_sql(env, register("leave_portal", "1.0.0"))
    hr = _script(env, "hr_core", [_statement("create table hr_core.first_app_table (id int)")])
    leave = _script(env, "leave_portal", [_statement("select 1/0", source="sql/002_fails.sql", line=4)])
    before = (fingerprint(env, "hr_core"), fingerprint(env, "leave_portal"))
    log = ListLog()
    with pytest.raises(StepFailed) as caught:
        _execute(env, [PlannedScript(hr), PlannedScript(leave)], log=log)
    message = caught.value.message
    assert "Execution failed at statement 2 of 2 (leave_portal: sql/002_fails.sql, line 4)" in message
    assert "nothing was applied: the plan's one transaction was rolled back, including the 1 of hr_core's 1" in message
    assert target.query("select to_regclass('hr_core.first_app_table')") == [(None,)]
    assert (fingerprint(env, "hr_core"), fingerprint(env, "leave_portal")) == before


def test_a_lock_held_by_a_reader_is_waited_for_with_bounded_retries(landscape, register, target):
    env = landscape["Test"]
    deploy_sql(env, register("hr_core", "1.0.0"))
    script = _script(env, "hr_core", [_statement("alter table hr_core.department add column extra int")])
    reader = psycopg2.connect(env.app_db_dsn())
    with reader.cursor() as cursor:
        cursor.execute("select count(*) from hr_core.department")  # holds ACCESS SHARE until it ends
    import threading

    threading.Timer(1.2, reader.rollback).start()
    log = ListLog()
    report = _execute(env, [PlannedScript(script)], log=log, lock_timeout_ms=500)
    reader.close()
    assert report.runs[0].lock_waits >= 1
    assert any("waited 500 ms for its lock" in m for m in log.messages("warning")), log
    assert target.column_type("hr_core", "department", "extra") == "integer"


def test_the_window_end_is_the_transactions_deadline(landscape, register, target):
    import datetime as dt

    env = landscape["Test"]
    deploy_sql(env, register("hr_core", "1.0.0"))
    script = _script(env, "hr_core", [_statement("select pg_sleep(3)"), _statement("select 1", line=2)])
    deadline = dt.datetime.now(tz=dt.UTC) + dt.timedelta(seconds=2)
    with pytest.raises(StepFailed) as caught:
        _execute(env, [PlannedScript(script)], deadline=deadline)
    assert "ran past its time limit" in caught.value.message and "nothing was applied" in caught.value.message


def test_a_drift_refusal_names_each_table_column_and_index(landscape, register, target):
    env = landscape["Test"]
    deploy_sql(env, register("hr_core", "1.0.0"))
    generated = generate_sql(environment=env, version=register("hr_core", "1.1.0"), log=ListLog())
    target.execute("alter table hr_core.employee add column nickname text")
    target.execute("create index employee_nick on hr_core.employee (nickname)")
    target.execute("create table hr_core.sneaky (id int)")
    with pytest.raises(StepFailed) as caught:
        _execute(env, [PlannedScript(generated)])
    message = caught.value.message
    assert "column hr_core.employee.nickname appeared" in message
    assert "index hr_core.employee_nick on hr_core.employee appeared" in message
    assert "table hr_core.sneaky appeared" in message


# --- the rehearsal never reaches the target ------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def logged_target_cluster():
    """A PostgreSQL cluster of its own that logs every statement, as a target's server."""
    binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not binaries:
        pytest.skip("no PostgreSQL server binaries on this machine")
    bindir = binaries[-1].parent
    folder = Path(tempfile.mkdtemp(prefix="lifetime-target-", dir="/tmp"))
    os.chmod(folder, 0o755)
    run_as: list[str] = []
    if os.geteuid() == 0:
        run_as = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres")
    data = folder / "data"
    port = _free_port()
    subprocess.run(
        [*run_as, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
        check=True,
        capture_output=True,
    )
    log_file = folder / "server.log"
    subprocess.run(
        [
            *run_as,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(log_file),
            "-w",
            "-o",
            f"-p {port} -c listen_addresses=127.0.0.1 -k {folder} -c log_statement=all",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    admin = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        # As a real target: a role that owns its application database and nothing more.
        cursor.execute("create role deployer login nosuperuser nocreaterole nocreatedb")
        cursor.execute("create database app owner deployer")
    admin.close()
    try:
        yield {"dsn": f"postgres://deployer@127.0.0.1:{port}/app", "log": log_file, "port": port}
    finally:
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(folder, ignore_errors=True)


def test_a_rehearsal_sends_the_target_only_catalog_reads_and_never_reaches_its_host(
    landscape, register, admin_user, logged_target_cluster
):
    env = landscape["Test"]
    env = env_services.save_environment(
        actor=Actor.person(admin_user),
        data={f: getattr(env, f) for f in env_services.ENVIRONMENT_FIELDS},
        environment=env,
        app_db_dsn=logged_target_cluster["dsn"],
    )
    version = register("hr_core", "1.1.0")
    generated = generate_sql(environment=env, version=version, log=ListLog())
    # A long-lived session on the target that a script would like to end.
    bystander = psycopg2.connect(logged_target_cluster["dsn"])
    with bystander.cursor() as cursor:
        cursor.execute("select pg_backend_pid()")
        pid = cursor.fetchone()[0]
    log_size = logged_target_cluster["log"].stat().st_size
    rehearse_sql(environment=env, generated=generated, log=ListLog())
    marker = Path(tempfile.gettempdir()) / f"lifetime-marker-{uuid.uuid4().hex}"
    hostile = _script_for(
        env,
        generated,
        [
            f"COPY (SELECT 1) TO PROGRAM 'touch {marker}'",
            f"SELECT pg_terminate_backend({pid})",
        ],
    )
    copy, terminate = (GeneratedScript(**{**hostile.__dict__, "statements": (s,)}) for s in hostile.statements)
    with pytest.raises(StepFailed) as caught:
        rehearse_sql(environment=env, generated=copy, log=ListLog())
    assert "permission denied" in caught.value.message or "must be" in caught.value.message
    # On the rehearsal server that pid is nobody: the target's session is out of its reach.
    rehearse_sql(environment=env, generated=terminate, log=ListLog())
    time.sleep(0.3)
    assert not marker.exists()
    with bystander.cursor() as cursor:  # still alive: nothing ended it
        cursor.execute("select 1")
    bystander.close()
    statements = _logged_statements(logged_target_cluster["log"], since=log_size)
    assert statements, "the target's log shows the catalog reads"
    for statement in statements:
        # Read by PostgreSQL's parser: only reads, session settings and transaction brackets.
        parsed = parse_script(statement)
        assert {p.node for p in parsed} <= {"SelectStmt", "VariableSetStmt", "VariableShowStmt", "TransactionStmt"}, (
            statement
        )
        assert all(not p.actions for p in parsed) and "pg_terminate_backend" not in statement, statement
    conn = psycopg2.connect(logged_target_cluster["dsn"])
    with conn.cursor() as cursor:
        cursor.execute("select datname from pg_database where datname like 'lifetime_rehearsal_%'")
        assert cursor.fetchall() == []
        cursor.execute("select count(*) from pg_namespace where nspname = 'hr_core'")
        assert cursor.fetchone() == (0,)
    conn.close()


def _logged_statements(log: Path, *, since: int) -> list[str]:
    """The statements a server logged with log_statement=all (a statement may span lines)."""
    import re

    statements: list[str] = []
    with open(log, encoding="utf-8", errors="replace") as handle:
        handle.seek(since)
        for line in handle:
            if "statement: " in line:
                statements.append(line.split("statement: ", 1)[1])
            elif statements and not re.match(r"^\d{4}-\d\d-\d\d ", line):
                statements[-1] += line
    return [" ".join(s.split()) for s in statements if s.strip()]


def _script_for(env, generated: GeneratedScript, sqls: list[str]) -> GeneratedScript:
    return GeneratedScript(
        application=generated.application,
        version=generated.version,
        schema=generated.schema,
        statements=tuple(_statement(sql) for sql in sqls),
        warnings=(),
        schema_fingerprint=generated.schema_fingerprint,
        schema_snapshot=generated.schema_snapshot,
    )


def test_the_rehearsal_role_has_no_rights_on_the_servers_host():
    server = RehearsalServer.from_settings()
    conn = psycopg2.connect(server.admin_dsn)
    try:
        from deployments.steps.sql_execute import ensure_rehearsal_role

        ensure_rehearsal_role(conn, server)
        with conn.cursor() as cursor:
            cursor.execute(
                "select rolsuper, pg_has_role(oid, 'pg_execute_server_program', 'member'), "
                "pg_has_role(oid, 'pg_write_server_files', 'member') from pg_roles where rolname = %s",
                [server.role],
            )
            assert cursor.fetchone() == (False, False, False)
    finally:
        conn.close()


def test_parse_results_name_locks_costs_and_actions():
    statements = parse_script(
        "alter table hr.e add column a int default 0, alter column b type bigint;\n"
        "alter table hr.e add constraint f foreign key (c) references hr.d (id);\n"
        "create index i on hr.e (a);\n"
        "alter table hr.e alter column d set not null;\n"
        "update hr.e set a = 1 where b = 2;\n"
    )
    assert [s.lock for s in statements] == [
        "ACCESS EXCLUSIVE",
        "SHARE ROW EXCLUSIVE",
        "SHARE",
        "ACCESS EXCLUSIVE",
        "ROW EXCLUSIVE",
    ]
    assert [[a.cost for a in s.actions] for s in statements] == [
        ["catalog", "rewrite"],
        ["scan"],
        ["index_build"],
        ["scan"],
        ["data_change"],
    ]
    assert statements[1].actions[0].detail["references"] == "hr.d"
