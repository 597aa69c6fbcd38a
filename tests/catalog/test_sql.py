"""Generate, rehearse and execute SQL against the real application databases of the landscape."""

from __future__ import annotations

import psycopg2
import pytest

from deployments.models import ApplicationVersion
from deployments.statements import classify, split_script
from deployments.steps import ListLog, StepFailed
from deployments.steps.schema import read_live_schema, read_schema_from_dsn, recreate_statements
from deployments.steps.sql import GeneratedScript, generate_sql
from deployments.steps.sql_execute import current_fingerprint, execute_sql, rehearse_sql
from tests.catalog.conftest import example_files


def deploy_sql(environment, version, *, previous=None) -> GeneratedScript:
    """Generate, rehearse and execute, as Prepare then Continue would."""
    generated = generate_sql(environment=environment, version=version, log=ListLog(), previous_version=previous)
    rehearse_sql(environment=environment, generated=generated, log=ListLog())
    execute_sql(environment=environment, generated=generated, log=ListLog())
    return generated


def fingerprint(environment, application: str = "hr_core") -> str:
    return current_fingerprint(environment=environment, schema=application, application=application)


def test_new_table_column_index_and_widened_columns_are_created_on_the_target(landscape, register, target):
    env = landscape["Test"]
    first = register("hr_core", "1.0.0")
    deploy_sql(env, first)
    assert target.query("select count(*) from hr_core.department") == [(3,)]
    assert target.applied_scripts("hr_core") == ["sql/001_seed_departments.sql"]

    generated = deploy_sql(env, register("hr_core", "1.1.0"), previous=first)
    kinds = [s.kind for s in generated.statements]
    assert {"add_column", "widen_column", "create_index", "create_table", "script", "record_script"} <= set(kinds)
    assert target.query("select to_regclass('hr_core.payslip') is not null") == [(True,)]
    assert target.column_type("hr_core", "employee", "phone") == "character varying(30)"
    assert target.column_type("hr_core", "employee", "email") == "character varying(254)"
    assert target.column_type("hr_core", "employee", "badge_number") == "bigint"
    assert target.column_type("hr_core", "employee", "salary") == "numeric(12,2)"
    assert target.index_exists("hr_core", "employee_last_name_idx")
    assert target.query("select hr_core.full_name('Ada', 'Lovelace')") == [("Ada Lovelace",)]
    assert target.applied_scripts("hr_core") == ["sql/001_seed_departments.sql", "sql/002_full_name.sql"]
    rewrite = next(s for s in generated.statements if "badge_number" in s.sql)
    assert "rewrites_table" in rewrite.flags


def test_generating_again_after_executing_changes_nothing(landscape, register):
    env = landscape["Test"]
    version = register("leave_portal", "1.1.0")
    deploy_sql(env, version)
    before = fingerprint(env, "leave_portal")
    again = generate_sql(environment=env, version=version, log=ListLog())
    assert again.statements == () and again.warnings == ()
    execute_sql(environment=env, generated=again, log=ListLog())
    assert fingerprint(env, "leave_portal") == before == again.schema_fingerprint


def test_each_environment_gets_its_own_sql(landscape, register, target):
    version = register("field_inspector", "1.0.0")
    deploy_sql(landscape["Test"], version)
    fresh = generate_sql(environment=landscape["Production"], version=version, log=ListLog())
    assert fresh.statements[0].kind == "create_schema"


@pytest.mark.parametrize(
    ("script", "message"),
    [
        (
            b"update hr_core.employee set phone = '1';\nselec 1 from hr_core.department;\n",
            'syntax error at or near "selec"',
        ),
        (
            b"-- first\n\nupdate hr_core.employee\n   set no_such_column = 1;\n",
            'column "no_such_column" of relation "employee" does not exist',
        ),
    ],
    ids=["syntax error", "unknown column"],
)
def test_a_bad_script_fails_the_rehearsal_with_its_statement_and_leaves_the_target_untouched(
    landscape, register, target, script, message
):
    env = landscape["Test"]
    deploy_sql(env, register("hr_core", "1.0.0"))
    version = register("hr_core", "1.1.0", {"sql/003_bad.sql": script})
    before = fingerprint(env)
    generated = generate_sql(environment=env, version=version, log=ListLog())
    with pytest.raises(StepFailed) as caught:
        rehearse_sql(environment=env, generated=generated, log=ListLog())
    text = caught.value.message
    assert message in text and "sql/003_bad.sql, line" in text and "Rehearsal failed at statement" in text
    assert caught.value.detail["statement"].strip() in script.decode()
    assert fingerprint(env) == before
    assert target.column_type("hr_core", "employee", "phone") is None
    assert not target.query("select 1 from pg_database where datname like 'lifetime_rehearsal_%'")


def test_a_failure_in_the_third_of_five_statements_leaves_the_target_exactly_as_before(landscape, register, target):
    env = landscape["Test"]
    deploy_sql(env, register("hr_core", "1.0.0"))
    # Passes the rehearsal (the scratch copy has no rows) and fails on the target's data: a duplicate.
    script = (
        b"create table hr_core.audit_note (id bigint primary key, note text);\n"
        b"insert into hr_core.audit_note values (1, 'one; two');\n"
        b"insert into hr_core.department (code, name) values ('ENG', 'Engineering again');\n"
        b"insert into hr_core.audit_note values (2, 'three');\n"
        b"update hr_core.department set name = upper(name);\n"
    )
    version = register("hr_core", "1.1.0", {"sql/003_notes.sql": script})
    generated = generate_sql(environment=env, version=version, log=ListLog())
    rehearse_sql(environment=env, generated=generated, log=ListLog())
    script_statements = [s for s in generated.statements if s.source == "sql/003_notes.sql" and s.kind == "script"]
    assert len(script_statements) == 5
    before = fingerprint(env)
    names_before = target.query("select name from hr_core.department order by code")
    log = ListLog()
    with pytest.raises(StepFailed) as caught:
        execute_sql(environment=env, generated=generated, log=log)
    failed_at = generated.statements.index(script_statements[2]) + 1
    assert f"Execution failed at statement {failed_at} of {len(generated.statements)}" in caught.value.message
    assert "duplicate key value" in caught.value.message and "sql/003_notes.sql, line 3" in caught.value.message
    assert log.done == failed_at - 1
    assert fingerprint(env) == before
    assert target.query("select name from hr_core.department order by code") == names_before
    assert target.applied_scripts("hr_core") == ["sql/001_seed_departments.sql"]
    assert target.column_type("hr_core", "employee", "phone") is None


def test_drift_after_generation_is_detected_and_execution_refused(landscape, register, target):
    env = landscape["Test"]
    deploy_sql(env, register("hr_core", "1.0.0"))
    generated = generate_sql(environment=env, version=register("hr_core", "1.1.0"), log=ListLog())
    target.execute("alter table hr_core.employee add column nickname text")
    called = []
    with pytest.raises(StepFailed) as caught:
        execute_sql(
            environment=env, generated=generated, log=ListLog(), before_first_statement=lambda: called.append(1)
        )
    assert "changed since its SQL was generated" in caught.value.message
    assert "tables.employee.columns.nickname: appeared" in caught.value.message
    assert called == [] and target.query("select to_regclass('hr_core.payslip')") == [(None,)]


def test_execution_reports_progress_and_calls_the_hook_once_before_the_first_statement(landscape, register, target):
    env = landscape["Test"]
    generated = generate_sql(environment=env, version=register("leave_portal", "1.0.0"), log=ListLog())
    seen = []

    def hook():
        seen.append(target.query("select to_regnamespace('leave_portal') is null")[0][0])

    log = ListLog()
    report = execute_sql(environment=env, generated=generated, log=log, before_first_statement=hook)
    assert seen == [True]  # nothing had run yet when the hook was called
    assert (log.done, log.total) == (report.statements, len(generated.statements))


def test_the_rehearsal_copy_has_the_fingerprint_of_the_target(landscape, register, app_databases):
    env = landscape["Test"]
    deploy_sql(env, register("hr_core", "1.0.0"))
    deploy_sql(env, register("hr_core", "1.1.0"))
    live = read_schema_from_dsn(env.app_db_dsn(), schema="hr_core", application="hr_core", definitions=True)
    copy_dsn = app_databases.create("ltcopy")
    conn = psycopg2.connect(copy_dsn)
    with conn, conn.cursor() as cursor:
        for statement in recreate_statements(live):
            cursor.execute(statement)
        assert read_live_schema(cursor, schema="hr_core", application="hr_core").fingerprint == live.fingerprint
    conn.close()


def test_explicit_transaction_control_and_concurrent_index_are_refused_at_generation(landscape, register):
    env = landscape["Test"]
    register("hr_core", "1.0.0")
    script = b"BEGIN;\nupdate hr_core.employee set salary = 0;\nCOMMIT;\ncreate index concurrently x on hr_core.employee (salary);\n"
    version = register("hr_core", "1.1.0", {"sql/003_tx.sql": script})
    with pytest.raises(StepFailed) as caught:
        generate_sql(environment=env, version=version, log=ListLog())
    text = caught.value.message
    assert "sql/003_tx.sql, line 1" in text and "explicit transaction control (BEGIN)" in text
    assert "explicit transaction control (COMMIT)" in text
    assert "CREATE INDEX CONCURRENTLY cannot run inside a transaction" in text


def test_an_applied_script_whose_content_changed_is_an_error(landscape, register):
    env = landscape["Test"]
    deploy_sql(env, register("hr_core", "1.0.0"))
    changed = register("hr_core", "1.1.0", {"sql/001_seed_departments.sql": b"select 1;\n"})
    with pytest.raises(
        StepFailed, match="sql/001_seed_departments.sql was already applied in this database with other content"
    ):
        generate_sql(environment=env, version=changed, log=ListLog())


def test_a_new_not_null_column_without_default_on_a_table_with_rows_is_an_error(landscape, register):
    env = landscape["Test"]
    deploy_sql(env, register("hr_core", "1.0.0"))
    toml = example_files("hr_core", "1.1.0")["lifetime.toml"].decode()
    toml = toml.replace(
        '{ name = "name", type = "varchar(100)", nullable = false },',
        '{ name = "name", type = "varchar(100)", nullable = false },\n  { name = "budget", type = "integer", nullable = false },',
    )
    version = register("hr_core", "1.1.0", {"lifetime.toml": toml.encode()})
    with pytest.raises(
        StepFailed, match=r"hr_core.department.budget is NOT NULL without a default, and hr_core.department has rows"
    ):
        generate_sql(environment=env, version=version, log=ListLog())


def test_narrowing_and_removals_are_warnings_never_generated(landscape, register):
    env = landscape["Test"]
    deploy_sql(env, register("leave_portal", "1.1.0"))
    newer = ApplicationVersion.objects.get(application__name="leave_portal", version="1.1.0")
    older = register("leave_portal", "1.0.0")
    # Going "back" to 1.0.0's data model: a narrower numeric, two columns and a table gone.
    generated = generate_sql(environment=env, version=older, log=ListLog(), previous_version=newer)
    assert generated.statements == ()
    text = " ".join(generated.warnings)
    assert "leave_balance.days is numeric(5,1) in the database and numeric(4,1) in the data model: a narrowing" in text
    assert "Column leave_portal.leave_balance.note is not in the data model any more: it is kept" in text
    assert "Table leave_portal.leave_policy was removed from the data model" in text


def test_dollar_bodies_comments_and_quoted_semicolons_split_right():
    script = """-- setup; nothing to see
create function f() returns int language plpgsql as $$
begin
  perform 1; -- inside
  return 1;
end $$;
insert into t values ('a;b', 'it''s; fine'); /* block ; comment */
select "odd;name" from t;
do $body$ begin raise notice 'x;y'; end $body$;
;;
-- trailing comment; no statement
"""
    statements = split_script(script)
    assert [s.line for s in statements] == [2, 7, 8, 9]
    assert statements[0].sql.endswith("end $$;") and "perform 1; -- inside" in statements[0].sql
    assert "'it''s; fine'" in statements[1].sql
    assert statements[2].sql.endswith('select "odd;name" from t;')
    assert [classify(s.sql).kind for s in statements] == ["create function", "insert", "select", "do"]


@pytest.mark.parametrize(
    ("statement", "refused"),
    [
        ("BEGIN", True),
        ("start transaction", True),
        ("commit;", True),
        ("ROLLBACK;", True),
        ("savepoint a;", True),
        ("vacuum analyze t;", True),
        ("create unique index concurrently i on t (x);", True),
        ("create database x;", True),
        ("do $$ begin perform 1; end $$;", False),
        ("create index i on t (x);", False),
    ],
)
def test_statements_that_cannot_run_in_the_deployment_transaction_are_refused(statement, refused):
    assert (classify(statement).refused is not None) is refused


def test_statement_flags_say_what_will_hurt_in_the_window():
    assert classify("alter table t alter column c type bigint").flags == ("lock_heavy", "rewrites_table")
    assert classify("create index i on t (x)").flags == ("blocks_writes",)
    assert "destructive" in classify("delete from t").flags
    assert "destructive" not in classify("delete from t where id = 1").flags
    assert classify("drop table t").flags == ("lock_heavy", "destructive")
