"""Service accounts: tokens stored hashed and shown once, created and revoked by infra admins in the
console or with a management command, last use recorded at most once a minute."""

from __future__ import annotations

import datetime as dt
import hashlib
import io

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from core import service_accounts
from core.actors import Actor
from core.models import AuditEvent, ServiceAccount
from environments import access
from environments.models import AccessLevel
from tests.api.conftest import ApiClient


def test_a_token_is_stored_only_as_its_digest_and_authenticates(db, admin_user):
    account, token = service_accounts.create_service_account(actor=Actor.person(admin_user), name="azure-pipeline")
    assert token.startswith(account.token_prefix + ".")
    assert account.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(ServiceAccount.objects.filter(pk=account.pk).values().get())
    assert not account.user.has_usable_password()
    assert service_accounts.authenticate(token) == account
    assert service_accounts.authenticate(token + "x") is None
    assert service_accounts.authenticate("") is None
    event = AuditEvent.objects.get(action="service_account.created")
    assert event.actor == admin_user and token not in str(event.changes)


def test_last_use_is_written_at_most_once_a_minute(db, admin_user):
    account, token = service_accounts.create_service_account(actor=Actor.person(admin_user), name="ci")
    service_accounts.authenticate(token)
    first = ServiceAccount.objects.get(pk=account.pk).last_used_at
    assert first is not None
    service_accounts.authenticate(token)
    assert ServiceAccount.objects.get(pk=account.pk).last_used_at == first
    ServiceAccount.objects.filter(pk=account.pk).update(last_used_at=timezone.now() - dt.timedelta(minutes=2))
    service_accounts.authenticate(token)
    assert ServiceAccount.objects.get(pk=account.pk).last_used_at > first


def test_names_are_checked_and_never_reused(db, admin_user):
    service_accounts.create_service_account(actor=Actor.person(admin_user), name="ci")
    with pytest.raises(service_accounts.ServiceAccountRefused, match="already exists"):
        service_accounts.create_service_account(actor=Actor.person(admin_user), name="CI")
    with pytest.raises(service_accounts.ServiceAccountRefused):
        service_accounts.create_service_account(actor=Actor.person(admin_user), name="no spaces allowed")
    with pytest.raises(service_accounts.ServiceAccountRefused, match="already exists"):
        service_accounts.create_service_account(actor=Actor.person(admin_user), name="admin")


def test_an_infra_admin_creates_an_account_with_rights_and_sees_the_token_once(client, admin_user, landscape):
    client.force_login(admin_user)
    assert client.get(reverse("service_accounts:create")).status_code == 200
    prod, test = landscape["Production"], landscape["Test"]
    response = client.post(
        reverse("service_accounts:create"),
        {
            "name": "release-pipeline",
            "description": "Azure DevOps release",
            f"level_{prod.pk}": AccessLevel.DEPLOY,
            f"level_{test.pk}": AccessLevel.VIEW,
            f"level_{landscape['Development'].pk}": AccessLevel.NONE,
        },
    )
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    token = response.context["token"]
    assert token in response.content.decode()
    account = ServiceAccount.objects.get(user__username="release-pipeline")
    assert account.created_by == admin_user
    assert access.level_for(account.user, prod) == AccessLevel.DEPLOY
    assert access.level_for(account.user, test) == AccessLevel.VIEW
    assert access.level_for(account.user, landscape["Development"]) == AccessLevel.NONE
    assert ApiClient(token).get("/environments").status_code == 200

    listing = client.get(reverse("service_accounts:list")).content.decode()
    assert "release-pipeline" in listing and account.token_prefix in listing and token not in listing
    assert "Deploy on Production" in listing


def test_revoke_is_a_post_with_csrf_and_is_audited(admin_user, landscape):
    from django.test import Client

    account, token = service_accounts.create_service_account(actor=Actor.person(admin_user), name="old-pipeline")
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    url = reverse("service_accounts:revoke", args=[account.key])
    assert client.get(url).status_code == 405
    assert client.post(url).status_code == 403  # no CSRF token
    assert ApiClient(token).get("/environments").status_code == 204  # valid token, no right anywhere yet
    page = client.get(reverse("service_accounts:list"))
    csrf = page.cookies["csrftoken"].value
    response = client.post(url, {"csrfmiddlewaretoken": csrf})
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.revoked_at is not None
    assert ApiClient(token).get("/environments").status_code == 401
    assert AuditEvent.objects.filter(action="service_account.revoked", actor=admin_user).exists()


def test_only_infra_admins_manage_service_accounts(client, release_user, admin_user):
    account, _ = service_accounts.create_service_account(actor=Actor.person(admin_user), name="ci")
    client.force_login(release_user)
    assert client.get(reverse("service_accounts:list")).status_code == 403
    assert client.post(reverse("service_accounts:create"), {"name": "sneaky"}).status_code == 403
    assert client.post(reverse("service_accounts:revoke", args=[account.key])).status_code == 403
    assert not ServiceAccount.objects.filter(user__username="sneaky").exists()
    account.refresh_from_db()
    assert account.revoked_at is None


def test_the_command_creates_an_account_and_prints_only_the_token(landscape):
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "create_service_account",
        "github-actions",
        "--deploy-on",
        "Test",
        "--deploy-on",
        "Production",
        "--view-on",
        "Development",
        stdout=out,
        stderr=err,
    )
    token = out.getvalue().strip()
    account = service_accounts.authenticate(token)
    assert account is not None and account.user.username == "github-actions"
    assert access.level_for(account.user, landscape["Production"]) == AccessLevel.DEPLOY
    assert access.level_for(account.user, landscape["Development"]) == AccessLevel.VIEW
    assert "shown only this once" in err.getvalue()


def test_the_command_refuses_an_unknown_environment_and_creates_nothing(landscape):
    with pytest.raises(CommandError, match="No environment named Prod"):
        call_command("create_service_account", "ci", "--deploy-on", "Prod", stdout=io.StringIO())
    assert not ServiceAccount.objects.exists()
