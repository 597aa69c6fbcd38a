"""Only users with manage on an environment, or infra admins, may change it."""

from __future__ import annotations

import pytest
from django.urls import reverse

from core.actors import Actor
from core.models import AuditEvent
from environments import services
from environments.models import AccessLevel, Environment
from tests.conftest import make_user
from tests.environments.test_environment_pages import _form_data


@pytest.mark.parametrize("who", ["ops", "release"])
def test_view_and_deploy_users_cannot_edit_an_environment_by_forged_post(
    client, landscape, ops_user, release_user, who
):
    user = {"ops": ops_user, "release": release_user}[who]
    client.force_login(user)
    prod = landscape["Production"]
    events_before = AuditEvent.objects.count()
    response = client.post(reverse("environments:edit", args=[prod.key]), _form_data(prod, name="Hacked"))
    assert response.status_code == 403
    prod.refresh_from_db()
    assert prod.name == "Production"
    assert AuditEvent.objects.count() == events_before


@pytest.mark.parametrize("who", ["ops", "release"])
def test_view_and_deploy_users_see_no_edit_button_and_get_403_on_the_form(
    client, landscape, ops_user, release_user, who
):
    user = {"ops": ops_user, "release": release_user}[who]
    client.force_login(user)
    prod = landscape["Production"]
    page = client.get(reverse("environments:detail", args=[prod.key])).content.decode()
    assert "Edit Environment" not in page
    assert client.get(reverse("environments:edit", args=[prod.key])).status_code == 403


def test_forged_frontend_posts_are_refused(client, landscape, release_user):
    client.force_login(release_user)
    prod = landscape["Production"]
    fe = prod.frontends.first()
    assert (
        client.post(reverse("environments:frontend_set_enabled", args=[fe.key]), {"enabled": "false"}).status_code
        == 403
    )
    assert (
        client.post(
            reverse("environments:frontend_create", args=[prod.key]), {"name": "x", "releases_root": "/tmp/x"}
        ).status_code
        == 403
    )
    fe.refresh_from_db()
    assert fe.enabled
    assert prod.frontends.count() == 2


def test_a_user_with_manage_on_one_environment_edits_it_but_not_another(client, landscape):
    user = make_user("tester")
    services.set_access(actor=Actor.system("test"), user=user, environment=landscape["Test"], level=AccessLevel.MANAGE)
    services.set_access(
        actor=Actor.system("test"), user=user, environment=landscape["Production"], level=AccessLevel.VIEW
    )
    client.force_login(user)
    test_env, prod = landscape["Test"], landscape["Production"]
    ok = client.post(reverse("environments:edit", args=[test_env.key]), _form_data(test_env, sql_lock_timeout_ms=1234))
    assert ok.status_code == 302
    refused = client.post(reverse("environments:edit", args=[prod.key]), _form_data(prod, sql_lock_timeout_ms=1234))
    assert refused.status_code == 403
    assert Environment.objects.get(pk=test_env.pk).sql_lock_timeout_ms == 1234
    assert Environment.objects.get(pk=prod.pk).sql_lock_timeout_ms != 1234


def test_only_infra_admins_create_environments(client, landscape, release_user, admin_user):
    client.force_login(release_user)
    assert client.get(reverse("environments:create")).status_code == 403
    client.force_login(admin_user)
    assert client.get(reverse("environments:create")).status_code == 200


def test_users_without_a_role_do_not_see_an_environment(client, landscape):
    stranger = make_user("stranger")
    client.force_login(stranger)
    assert "Production" not in client.get(reverse("environments:list")).content.decode()
    assert client.get(reverse("environments:detail", args=[landscape["Production"].key])).status_code == 403


def test_anonymous_users_are_sent_to_sign_in(client, landscape):
    response = client.get(reverse("environments:list"))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_csrf_is_enforced_on_environment_changes(landscape, admin_user):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_user)
    prod = landscape["Production"]
    response = strict.post(reverse("environments:edit", args=[prod.key]), _form_data(prod, name="NoToken"))
    assert response.status_code == 403
    prod.refresh_from_db()
    assert prod.name == "Production"
