"""Settings per environment: declared in the manifest, valued per environment by people with the
manage right, checked by Prepare's validation; a secret is encrypted and never shown, logged or
audited in clear."""

from __future__ import annotations

import logging

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from core.actors import Actor
from core.models import AuditEvent
from deployments.catalog import settings as app_settings
from deployments.catalog.bundles import BundleRefused
from deployments.models import SettingValue
from deployments.plans import services as plans
from environments import services as env_services
from environments.models import AccessLevel
from tests.catalog.conftest import example_files
from tests.conftest import make_user

SETTINGS = b"""
[settings.greeting]
type = "string"
default = "Hello"
description = "What the home page says first"

[settings.page_size]
type = "integer"
default = 20

[settings.payroll_api_key]
type = "string"
secret = true
"""
SECRET = "pk_live_Zebra-7731-Quartz"


def with_settings(extra: bytes = SETTINGS) -> dict[str, bytes]:
    return {"lifetime.toml": example_files("hr_core", "1.0.0")["lifetime.toml"] + extra}


@pytest.fixture
def hr(register):
    return register("hr_core", "1.0.0", with_settings())


def test_the_manifest_declares_settings_with_type_default_and_secret(hr):
    declared = {s.name: s for s in app_settings.declared(hr)}
    assert declared["greeting"].default == "Hello" and not declared["greeting"].required
    assert declared["page_size"].type == "integer"
    assert declared["payroll_api_key"].secret and declared["payroll_api_key"].required


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (b'[settings.x]\ntype = "float"\n', "not one of string, integer, boolean"),
        (b'[settings.x]\ntype = "integer"\ndefault = "ten"\n', "is not a integer"),
        (b'[settings.x]\nsecret = true\ndefault = "a"\n', "a secret has no default"),
        (b'[settings.Bad-Name]\ntype = "string"\n', "lower case letters"),
        (b'[settings.x]\ncolour = "red"\n', "may say type, default, secret and description"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(register, extra, words):
    with pytest.raises(BundleRefused, match=words):
        register("hr_core", "1.0.0", with_settings(extra))


def test_values_are_set_with_the_manage_right_and_typed(hr, landscape):
    test = landscape["Test"]
    deployer = make_user("deployer")
    env_services.set_access(actor=Actor.system("test"), user=deployer, environment=test, level=AccessLevel.DEPLOY)
    with pytest.raises(PermissionDenied):
        app_settings.set_value(
            actor=Actor.person(deployer), environment=test, application=hr.application, name="greeting", raw="Hi"
        )
    system = Actor.system("test")
    with pytest.raises(app_settings.SettingRefused, match="page_size must be a whole number"):
        app_settings.set_value(actor=system, environment=test, application=hr.application, name="page_size", raw="x")
    app_settings.set_value(actor=system, environment=test, application=hr.application, name="page_size", raw="50")
    shown = {v.name: (v.source, v.shown) for v in app_settings.describe(test, hr)}
    assert shown == {
        "greeting": ("default", "Hello"),
        "page_size": ("environment", "50"),
        "payroll_api_key": ("missing", ""),
    }
    assert app_settings.resolve(test, hr) == {"greeting": "Hello", "page_size": 50}


def test_a_required_setting_without_value_fails_validation(hr, landscape, admin_user):
    plan = plans.create_plan(
        actor=Actor.person(admin_user),
        source=landscape["Development"],
        target=landscape["Test"],
        operations=[plans.Operation(hr.application, hr)],
    )
    errors = plans.validate_plan(plan).errors
    assert "hr_core 1.0.0: the setting payroll_api_key has no value in Test" in errors
    app_settings.set_value(
        actor=Actor.system("test"),
        environment=landscape["Test"],
        application=hr.application,
        name="payroll_api_key",
        raw=SECRET,
    )
    assert not [e for e in plans.validate_plan(plan).errors if "setting" in e]


def test_a_secret_is_encrypted_and_never_in_pages_the_audit_trail_or_logs(hr, landscape, admin_user, client, caplog):
    caplog.set_level(logging.DEBUG)
    test = landscape["Test"]
    client.force_login(admin_user)
    page = reverse("catalog:environment_settings", args=[test.key])
    response = client.post(
        page, {"application": str(hr.application.key), "name": "payroll_api_key", "secret": "1", "value": SECRET}
    )
    assert response.status_code == 302
    row = SettingValue.objects.get(environment=test, name="payroll_api_key")
    assert row.value is None and row.value_encrypted and SECRET not in row.value_encrypted
    assert app_settings.resolve(test, hr)["payroll_api_key"] == SECRET

    # An empty secret field keeps the value (write-only: the form never holds it).
    client.post(page, {"application": str(hr.application.key), "name": "payroll_api_key", "secret": "1", "value": ""})
    assert app_settings.resolve(test, hr)["payroll_api_key"] == SECRET

    text = client.get(page).content.decode()
    assert "set (hidden)" in text and SECRET not in text
    for url in (reverse("audit"), reverse("environments:detail", args=[test.key])):
        assert SECRET not in client.get(url).content.decode(), url
    assert SECRET not in str(list(AuditEvent.objects.values_list("changes", "message", "object_label")))
    assert AuditEvent.objects.filter(action="setting.set", changes__value="(secret changed)").exists()
    assert SECRET not in caplog.text


def test_viewers_see_settings_but_cannot_change_them(hr, landscape, client):
    test = landscape["Test"]
    viewer = make_user("viewer")
    env_services.set_access(actor=Actor.system("test"), user=viewer, environment=test, level=AccessLevel.VIEW)
    client.force_login(viewer)
    page = reverse("catalog:environment_settings", args=[test.key])
    text = client.get(page).content.decode()
    assert "greeting" in text and 'name="value"' not in text
    denied = client.post(page, {"application": str(hr.application.key), "name": "greeting", "value": "Hi"})
    assert denied.status_code == 403
    assert not SettingValue.objects.exists()
