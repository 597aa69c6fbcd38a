"""Chaos run: many Continues on a real engine, each with one random fault at a random moment.

Not part of the test suite. Run it with its own Redis (started here, private, append-only file
on, in a temporary folder) so that restarting or flushing Redis touches nobody else:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/lifetime_chaos \\
        .venv/bin/python benchmarks/chaos_continue.py --count 50 --json var/chaos.json

Each round registers a new version of hr_core (1.1.N, with one hand-written script that inserts
one row), prepares it to Production (two front-ends, each a real agent and front-end server),
adds a pg_sleep of a few seconds to Continue's SQL so that faults land inside it, presses
Continue, waits a random 0-8 s and injects one fault:

* ``kill_worker``: SIGKILL of the stage worker (restarted at once);
* ``kill_agent``: SIGKILL of one front-end's agent (restarted 3 s later);
* ``restart_redis``: Redis stopped (SIGTERM, it writes its append-only file) and started again;
* ``flush_redis``: FLUSHALL on this run's private Redis;
* ``terminate_db``: pg_terminate_backend of the stage worker's console connections (its Django
  connection, named by application_name, and its stage lease).

With ``--during prepare`` the fault lands in Prepare instead (a random 0-1 s after the click: about Prepare's length here) and
the round, once prepared, continues without a fault; it also checks that Prepare ran none of the
round's script.

Then it waits for the plan's final status and checks what users would: every front-end answers
the same version (not mixed); that version is the one the console records, and the plan's status
agrees (successful: the new one; otherwise: the old one); each round's script is in the target's
ledger at most once and its row was inserted at most once. Front-ends found drifted are put back
(and counted) before the next round.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FAULTS = ("kill_worker", "kill_agent", "restart_redis", "flush_redis", "terminate_db")


# --- the wrapper: a private Redis, then pytest on this very file -----------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_command(port: int, folder: str) -> list[str]:
    return [
        "redis-server",
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        folder,
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--maxmemory-policy",
        "noeviction",
    ]


def start_redis(port: int, folder: str) -> subprocess.Popen:
    proc = subprocess.Popen(redis_command(port, folder), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return proc
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("private Redis did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated subset of " + ", ".join(FAULTS))
    parser.add_argument(
        "--during",
        choices=("continue", "prepare"),
        default="continue",
        help="the stage the faults land in (prepare: the round then continues without a fault)",
    )
    parser.add_argument("--json", default=str(REPO / "var" / "chaos_continue.json"))
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="chaos-redis-")
    port = _free_port()
    redis_proc = start_redis(port, folder)
    env = {
        **os.environ,
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "CHAOS_REDIS_PORT": str(port),
        "CHAOS_REDIS_DIR": folder,
        "CHAOS_REDIS_PID": str(redis_proc.pid),
        "CHAOS_COUNT": str(args.count),
        "CHAOS_SEED": str(args.seed),
        "CHAOS_FAULTS": args.faults,
        "CHAOS_DURING": args.during,
        "CHAOS_JSON": args.json,
    }
    try:
        return subprocess.call(
            [
                str(REPO / "scripts" / "test.sh"),
                str(Path(__file__).resolve()),
                "-p",
                "no:cacheprovider",
                "-q",
                "-s",
            ],
            env=env,
            cwd=REPO,
        )
    finally:
        _stop_redis_by_port(port)
        shutil.rmtree(folder, ignore_errors=True)


def _stop_redis_by_port(port: int) -> None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"SHUTDOWN NOSAVE\r\n")
    except OSError:
        pass


# --- the run itself (collected by pytest when given this file) ------------------------------------

if "CHAOS_COUNT" in os.environ:
    import psycopg2
    import pytest
    import redis
    from django.conf import settings
    from django.db import connection

    from core.actors import Actor
    from deployments.catalog import services as catalog
    from deployments.models import DeploymentPlan, GeneratedSql, PlanState, RunningVersion
    from deployments.plans import services as plans
    from deployments.stages import drift
    from deployments.state import machine
    from deployments.steps.switch import releases_for
    from examples.build import FORMATS, bundle_files, pack
    from lifetime.celery import app as celery_app

    # The end-to-end tests' fixtures, used here.
    from tests.conftest import (  # noqa: F401
        admin_user,
        app_databases,
        django_db_setup,
        outbound_to_loopback,
        small_rehearsal_calibration,
    )
    from tests.e2e.conftest import engine  # noqa: F401
    from tests.processes import console_env

    pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
    WORKER_APP = "chaos stage worker"

    def _version_bundle(n: int) -> bytes:
        files = dict(bundle_files("hr_core", "1.1.0", modules=4))
        version = f"1.1.{n}"
        manifest = files["lifetime.toml"].decode().replace('version = "1.1.0"', f'version = "{version}"', 1)
        files["lifetime.toml"] = manifest.encode()
        files[f"sql/9{n:03d}_chaos.sql"] = (
            f"INSERT INTO hr_core.department (code, name) VALUES ('CH{n}', 'Chaos round {n}');\n".encode()
        )
        return pack(files, FORMATS["hr_core"])

    def _releases(eng) -> list[str]:
        """The release folder each front-end's server runs hr_core from (its loopback-only JSON)."""
        out = []
        for fe in eng.frontends["Production"]:
            status, body = fe.answer("/_lifetime/releases")
            out.append(
                json.loads(body)["applications"].get("hr_core", {}).get("release")
                if status == 200
                else f"HTTP {status}"
            )
        return out

    def _ledger(env, n: int) -> tuple[int, int]:
        conn = psycopg2.connect(env.app_db_dsn())
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "select count(*) from lifetime_meta.applied_scripts where application = 'hr_core'"
                    " and script like %s",
                    [f"%9{n:03d}_chaos.sql"],
                )
                ledger = cur.fetchone()[0]
                cur.execute("select count(*) from hr_core.department where code = %s", [f"CH{n}"])
                rows = cur.fetchone()[0]
            return ledger, rows
        finally:
            conn.close()

    def _restart_redis() -> None:
        port, folder = int(os.environ["CHAOS_REDIS_PORT"]), os.environ["CHAOS_REDIS_DIR"]
        pid = int(os.environ["CHAOS_REDIS_PID"])
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
                time.sleep(0.05)
            except ProcessLookupError:
                break
        # The wrapper's child: reap it so that its pid is not reused meanwhile.
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        proc = start_redis(port, folder)
        os.environ["CHAOS_REDIS_PID"] = str(proc.pid)

    def _terminate_worker_connections() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "select count(pg_terminate_backend(pid)) from pg_stat_activity where datname = current_database()"
                " and (application_name = %s or application_name like 'lifetime stage %% lease')",
                [WORKER_APP],
            )
            return cursor.fetchone()[0]

    def _agents_back(eng) -> None:
        for fe in eng.frontends["Production"]:
            if not fe.agent.running:
                fe.agent.start()
                fe.agent.wait_ready(celery_app, timeout_s=60)

    def _worker_back(eng) -> None:
        if eng.worker is None or not eng.worker.running:
            eng.start_worker()

    def _slow_sql(plan, sleep_s: int) -> None:
        """A pg_sleep in front of Continue's SQL, so that faults land inside it."""
        sql = GeneratedSql.objects.get(plan=plan)
        statements = list(sql.statements)
        statements.insert(
            0,
            {"sql": f"SELECT pg_sleep({sleep_s})", "kind": "script", "source": "sql/slow.sql", "flags": [], "line": 1},
        )
        GeneratedSql.objects.filter(pk=sql.pk).update(statements=statements)

    def _with_a_fault(eng, plan, fault: str, rng: random.Random, row: dict, delay: float, *until: str):
        """``delay`` seconds after the click, one fault, then what it killed started again; waits
        for one of the states ``until`` and records how long the fault took to settle."""
        time.sleep(delay)
        injected = time.monotonic()
        row["at_fault"] = DeploymentPlan.objects.filter(pk=plan.pk).values_list("state", flat=True).get()
        if fault == "kill_worker":
            eng.worker.kill()
            eng.start_worker()
        elif fault == "kill_agent":
            victim = rng.choice(eng.frontends["Production"])
            victim.agent.kill()
            time.sleep(3)
            victim.agent.start()
            victim.agent.wait_ready(celery_app, timeout_s=60)
        elif fault == "restart_redis":
            _restart_redis()
        elif fault == "flush_redis":
            redis.Redis.from_url(settings.REDIS_URL).flushall()
        elif fault == "terminate_db":
            row["terminated"] = _terminate_worker_connections()
        _worker_back(eng)
        _agents_back(eng)
        plan = eng.wait(plan, *until, timeout_s=300)
        row["settle_s"] = round(time.monotonic() - injected, 1)
        return plan

    def test_chaos_continue(engine):  # noqa: F811 - the fixture imported above
        count, rng = int(os.environ["CHAOS_COUNT"]), random.Random(int(os.environ["CHAOS_SEED"]))
        faults = [f for f in os.environ.get("CHAOS_FAULTS", ",".join(FAULTS)).split(",") if f in FAULTS]
        during_prepare = os.environ.get("CHAOS_DURING") == "prepare"
        base = console_env(settings, console_url=engine.console_url)["DATABASE_URL"]
        engine.worker_env_extra.update(
            {"DATABASE_URL": f"{base}?application_name={WORKER_APP.replace(' ', '+')}", "FRONTEND_CHECK_SECONDS": "5"}
        )
        engine.start_worker()
        engine.start_beat()
        prod = engine.environment("Production", order=3, two_stage=True, app_db=engine.app_databases.create())
        engine.deploy("Development", "Production", [engine.version("hr_core", "1.0.0")])
        system = Actor.system("chaos run")
        results = []
        for n in range(1, count + 1):
            fault = rng.choice(faults)
            sleep_s = rng.randint(2, 6)
            # From the click to a little after the SQL's sleep: most faults land inside Continue.
            # During Prepare: from the click to about Prepare's length on this machine (about 1 s).
            delay = round(rng.uniform(0, 1.0 if during_prepare else sleep_s + 3), 2)
            row = {"round": n, "fault": fault, "delay_s": delay}
            try:
                # Drift left by an earlier round is put back first (counted there).
                for fe in drift.check_frontends(environment=prod):
                    drift.put_back(actor=system, frontend=fe)
                version = catalog.register_bundle(data=_version_bundle(n), actor=system)
                old = RunningVersion.objects.filter(environment=prod).first()
                plan = engine.plan("Development", "Production", [version])
                plans.start_plan(actor=Actor.person(engine.release), plan=plan)
                if during_prepare:
                    plan = _with_a_fault(engine, plan, fault, rng, row, delay, PlanState.PREPARED, *machine.FINAL)
                    row["prepared"] = plan.state
                    row["prepare_attempts"] = plan.stages.filter(kind="prepare").count()
                    # Prepare never runs the target's scripts: nothing of this round's yet.
                    row["applied_in_prepare"] = _ledger(prod, n) != (0, 0)
                    if plan.state == PlanState.PREPARED:
                        plans.continue_plan(actor=Actor.person(engine.release), plan=plan)
                    plan = engine.wait(plan, *machine.FINAL, timeout_s=300)
                else:
                    plan = engine.wait(plan, PlanState.PREPARED, timeout_s=240)
                    _slow_sql(plan, sleep_s)
                    plans.continue_plan(actor=Actor.person(engine.release), plan=plan)
                    plan = _with_a_fault(engine, plan, fault, rng, row, delay, *machine.FINAL)
                row["state"] = plan.state
                row["attempts"] = plan.stages.filter(kind="continue").count()
                time.sleep(2)  # a revert queued for a restarted agent
                answers = _releases(engine)
                recorded = RunningVersion.objects.filter(environment=prod).select_related("version").first()
                row["answers"] = answers
                row["recorded"] = recorded.version.version if recorded else None
                row["mixed"] = len(set(answers)) != 1
                succeeded = plan.state in (PlanState.FINISHED_SUCCESSFUL, PlanState.FINISHED_WITH_WARNINGS)
                expected = version if succeeded else (old.version if old else None)
                if expected is not None:
                    expected.refresh_from_db()  # compiled by Prepare since it was registered
                expected_release = releases_for([expected])["hr_core"] if expected else None
                recorded_id = recorded.version_id if recorded else None
                row["status_disagrees"] = recorded_id != (expected.pk if expected else None) or any(
                    a != expected_release for a in answers
                )
                ledger, inserted = _ledger(prod, n)
                row["script_ledger"], row["script_rows"] = ledger, inserted
                row["applied_twice"] = ledger > 1 or inserted > 1
                row["drifted"] = [fe.name for fe in drift.check_frontends(environment=prod)]
            except Exception as exc:  # a round that could not be judged is reported as such
                row["error"] = f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
                _worker_back(engine)
                _agents_back(engine)
                # A plan left holding Production would block every next round.
                for held in DeploymentPlan.objects.filter(target=prod, state__in=machine.HOLDING):
                    try:
                        engine.wait(held, *machine.FINAL, timeout_s=120)
                    except AssertionError:
                        try:
                            plans.abort_plan(actor=system, plan=held, reason="chaos run: stuck round")
                        except Exception:
                            pass
            results.append(row)
            print(json.dumps(row), flush=True)
        _summary(results)

    def _summary(results: list[dict]) -> None:
        path = Path(os.environ["CHAOS_JSON"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1))
        judged = [r for r in results if "error" not in r]
        finals = set(machine.FINAL)
        prepare = os.environ.get("CHAOS_DURING") == "prepare"
        print(
            f"\n| fault | rounds | landed mid-{'Prepare' if prepare else 'Continue'} | successful | other final |"
            " mixed | applied twice | status disagrees | drift left | settle median s | settle max s |"
            + (" applied in Prepare | Prepare attempts > 1 |" if prepare else "")
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if prepare else ""))
        for fault in (*FAULTS, "all"):
            rows = [r for r in judged if fault == "all" or r["fault"] == fault]
            if not rows:
                continue
            inside = [
                r
                for r in rows
                if (r.get("at_fault") == PlanState.PREPARING if prepare else r.get("at_fault") not in finals)
            ]
            settle = [r["settle_s"] for r in inside] or [0.0]
            ok = sum(r["state"] in ("finished_successful", "finished_with_warnings") for r in rows)
            print(
                f"| {fault} | {len(rows)} | {len(inside)} | {ok} | {len(rows) - ok} | {sum(r['mixed'] for r in rows)} | "
                f"{sum(r['applied_twice'] for r in rows)} | {sum(r['status_disagrees'] for r in rows)} | "
                f"{sum(bool(r['drifted']) for r in rows)} | {statistics.median(settle):.1f} | {max(settle):.1f} |"
                + (
                    f" {sum(r['applied_in_prepare'] for r in rows)} | {sum(r['prepare_attempts'] > 1 for r in rows)} |"
                    if prepare
                    else ""
                )
            )
        errors = [r for r in results if "error" in r]
        print(f"\nrounds: {len(results)}, judged: {len(judged)}, not judged (error): {len(errors)}")
        for r in errors:
            print(f"  round {r['round']} ({r['fault']}): {r['error']}")


if __name__ == "__main__":
    sys.exit(main())
