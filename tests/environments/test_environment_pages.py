from __future__ import annotations

from django.urls import reverse

from environments.models import Environment


def test_infra_admin_sees_environments_in_promotion_order(client, landscape, admin_user):
    client.force_login(admin_user)
    page = client.get(reverse("environments:list")).content.decode()
    assert page.index("Development") < page.index("Test") < page.index("Production")
    assert "Two stages" in page


def test_admin_ticks_two_stage_flag_and_it_is_kept(client, landscape, admin_user):
    client.force_login(admin_user)
    test_env = landscape["Test"]
    form = _form_data(test_env, two_stage_deployments="on")
    response = client.post(reverse("environments:edit", args=[test_env.key]), form)
    assert response.status_code == 302, response.content.decode()[:2000]
    test_env.refresh_from_db()
    assert test_env.two_stage_deployments is True


def _form_data(env: Environment, **overrides) -> dict:
    data = {
        "name": env.name,
        "order": env.order,
        "kind": env.kind,
        "hostname": env.hostname,
        "window_days": [str(d) for d in env.window_days],
        "window_start": env.window_start.strftime("%H:%M") if env.window_start else "",
        "window_minutes": env.window_minutes or "",
        "window_timezone": env.window_timezone,
        "prepared_plan_ttl_hours": env.prepared_plan_ttl_hours,
        "sql_lock_timeout_ms": env.sql_lock_timeout_ms,
        "sql_statement_timeout_ms": env.sql_statement_timeout_ms,
    }
    if env.two_stage_deployments:
        data["two_stage_deployments"] = "on"
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}
