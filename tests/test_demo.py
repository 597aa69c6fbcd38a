"""The demo data of the README: created once, however often the first command runs."""

from __future__ import annotations

import psycopg2
from django.contrib.auth.models import User

from core.models import AuditEvent
from deployments import demo
from environments.models import AccessLevel, Environment, EnvironmentAccess, FrontEnd


def test_loading_the_demo_twice_creates_everything_once(db, tmp_path):
    demo.load_environments(frontends_root=tmp_path, log=lambda *_: None)
    counts = (Environment.objects.count(), FrontEnd.objects.count(), User.objects.count(), AuditEvent.objects.count())
    demo.load_environments(frontends_root=tmp_path, log=lambda *_: None)
    assert (
        Environment.objects.count(),
        FrontEnd.objects.count(),
        User.objects.count(),
        AuditEvent.objects.count(),
    ) == counts
    assert list(Environment.objects.values_list("name", "order", "two_stage_deployments")) == [
        ("Development", 1, False),
        ("Test", 2, False),
        ("Production", 3, True),
    ]
    prod = Environment.objects.get(name="Production")
    assert prod.window_label().startswith("02:00–04:00")
    assert FrontEnd.objects.filter(environment=prod).count() == 2
    assert set(EnvironmentAccess.objects.filter(user__username="ops").values_list("level", flat=True)) == {
        AccessLevel.VIEW
    }
    assert set(EnvironmentAccess.objects.filter(user__username="release").values_list("level", flat=True)) == {
        AccessLevel.DEPLOY
    }
    assert User.objects.get(username="admin").check_password(demo.DEMO_PASSWORD)
    conn = psycopg2.connect(prod.app_db_dsn())  # its own application database answers
    conn.close()
