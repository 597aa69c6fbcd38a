"""The Procfile lines that ``make up`` runs for the front-ends, and the agents' reports."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command

from environments import agents
from environments.models import FrontEnd


def test_frontend_processes_prints_an_agent_and_a_server_per_enabled_frontend(landscape, admin_user):
    fe1 = FrontEnd.objects.get(environment=landscape["Production"], name="fe1")
    FrontEnd.objects.filter(pk=fe1.pk).update(base_url="http://127.0.0.1:8131")
    FrontEnd.objects.filter(environment=landscape["Test"], name="fe2").update(enabled=False)

    out, err = io.StringIO(), io.StringIO()
    call_command("frontend_processes", stdout=out, stderr=err)
    lines = out.getvalue().splitlines()

    assert all(re.fullmatch(r"[a-z0-9-]+: .+", line) for line in lines), lines
    names = [line.split(":")[0] for line in lines]
    assert len([n for n in names if n.startswith("agent-")]) == 5
    assert "agent-test-fe2" not in names
    server = next(line for line in lines if line.startswith("frontend-production-fe1:"))
    assert "-b 127.0.0.1:8131" in server and fe1.releases_root in server
    agent = next(line for line in lines if line.startswith("agent-production-fe1:"))
    assert f"-Q {fe1.queue}" in agent and "-A agent worker" in agent
    assert "no base URL" in err.getvalue()


@pytest.mark.e2e
def test_reports_record_when_each_agent_answered_and_what_it_holds(frontend_hosts, store_binary):
    environment = frontend_hosts.environment()
    up, down = frontend_hosts.start(environment, 2)
    down.agent.stop()

    reports = {r.frontend.split("/")[-1]: r for r in agents.refresh_reports(environment=environment, timeout_s=1.5)}

    assert reports[up.row.name].answered and not reports[down.row.name].answered
    assert "did not answer" in reports[down.row.name].problem
    up.row.refresh_from_db()
    down.row.refresh_from_db()
    assert up.row.last_seen_at is not None and up.row.last_report["ok"]
    assert down.row.last_seen_at is None
