"""Continue's mobile package step: built when the native shell changes, skipped otherwise."""

from __future__ import annotations

import hashlib
import json
import zipfile
from io import BytesIO

import pytest
from django.urls import reverse

from core.actors import Actor
from deployments.artifacts import store as artifacts
from deployments.models import Application, ApplicationVersion, MobilePackage
from deployments.steps import ListLog, StepFailed
from deployments.steps.mobile import NO_NEW_PACKAGE, build_mobile_package, unconfigured_mobile_apps
from environments import services as env_services
from environments.models import AccessLevel
from tests.conftest import make_user


def _version(app: Application, version: str, plugins: dict[str, str]) -> ApplicationVersion:
    native = {"app_id": "com.example.fieldinspector", "platforms": ["android", "ios"], "plugins": plugins}
    canonical = json.dumps(native, sort_keys=True, separators=(",", ":"))
    return ApplicationVersion.objects.create(
        application=app,
        version=version,
        bundle_sha256="0" * 64,
        manifest={"name": app.name, "version": version, "kind": "mobile", "native": native},
        native_hash=hashlib.sha256(canonical.encode()).hexdigest(),
    )


@pytest.fixture
def mobile_app(db) -> Application:
    return Application.objects.create(name="field-inspector", kind="mobile", url_path="/field-inspector")


@pytest.fixture
def production(admin_user):
    return env_services.save_environment(
        actor=Actor.person(admin_user), data={"name": "Production", "order": 3, "kind": "Production"}
    )


def _configure(client, admin_user, environment, app) -> None:
    client.force_login(admin_user)
    response = client.post(
        reverse("mobile:configure", args=[environment.key, app.key]),
        {
            "app_identifier": "com.example.fieldinspector.prod",
            "server_url": "https://prod.example.com",
            "app_version": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:1000]


def test_validation_asks_to_configure_the_mobile_app_first(production, mobile_app):
    assert unconfigured_mobile_apps(environment=production, applications=[mobile_app]) == [
        "configure the mobile app field-inspector in Production first"
    ]
    with pytest.raises(StepFailed, match="configure the mobile app field-inspector in Production first"):
        build_mobile_package(environment=production, version=_version(mobile_app, "1.0.0", {}), log=ListLog())


def test_package_is_built_when_plugins_change_and_skipped_for_web_code_only(
    client, admin_user, production, mobile_app, artifact_store
):
    _configure(client, admin_user, production, mobile_app)
    assert unconfigured_mobile_apps(environment=production, applications=[mobile_app]) == []

    first = build_mobile_package(
        environment=production, version=_version(mobile_app, "1.0.0", {"camera": "2.0.0"}), log=ListLog()
    )
    assert first is not None

    log = ListLog()
    web_only = build_mobile_package(
        environment=production, version=_version(mobile_app, "1.1.0", {"camera": "2.0.0"}), log=log
    )
    assert web_only is None
    assert any(NO_NEW_PACKAGE in line for line in log.messages())

    log = ListLog()
    plugins_changed = build_mobile_package(
        environment=production, version=_version(mobile_app, "2.0.0", {"camera": "2.1.0", "barcode": "3.0.1"}), log=log
    )
    assert plugins_changed is not None and plugins_changed.sha256 != first.sha256
    assert "built the app package for Production" in log.messages()[0]
    assert MobilePackage.objects.filter(environment=production).count() == 2

    with zipfile.ZipFile(artifacts.path_for(plugins_changed.sha256)) as archive:
        settings_json = json.loads(archive.read("lifetime-mobile.json"))
        assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert settings_json["app_identifier"] == "com.example.fieldinspector.prod"
    assert settings_json["server_url"] == "https://prod.example.com"
    assert settings_json["app_version"] == "2.0.0"

    page = client.get(reverse("mobile:apps", args=[production.key])).content.decode()
    assert plugins_changed.file_name in page
    download = client.get(reverse("mobile:download", args=[production.key, plugins_changed.pk]))
    assert download.status_code == 200
    assert zipfile.ZipFile(BytesIO(b"".join(download.streaming_content))).namelist()


def test_the_same_inputs_give_the_same_package(production, mobile_app, artifact_store, admin_user):
    from deployments.mobile.config import save_mobile_config
    from deployments.steps.mobile import package_bytes

    config = save_mobile_config(
        actor=Actor.person(admin_user),
        environment=production,
        application=mobile_app,
        data={"app_identifier": "com.example.x", "server_url": "https://x.example.com"},
    )
    version = _version(mobile_app, "1.0.0", {"camera": "2.0.0"})
    assert package_bytes(environment=production, version=version, config=config) == package_bytes(
        environment=production, version=version, config=config
    )


def test_only_managers_configure_and_only_viewers_download(client, production, mobile_app, admin_user, artifact_store):
    _configure(client, admin_user, production, mobile_app)
    package = build_mobile_package(environment=production, version=_version(mobile_app, "1.0.0", {}), log=ListLog())
    viewer, stranger = make_user("viewer"), make_user("stranger")
    env_services.set_access(actor=Actor.system("test"), user=viewer, environment=production, level=AccessLevel.VIEW)

    client.force_login(viewer)
    assert client.get(reverse("mobile:download", args=[production.key, package.pk])).status_code == 200
    assert client.get(reverse("mobile:configure", args=[production.key, mobile_app.key])).status_code == 403
    page = client.get(reverse("environments:detail", args=[production.key])).content.decode()
    assert reverse("mobile:apps", args=[production.key]) in page

    client.force_login(stranger)
    assert client.get(reverse("mobile:download", args=[production.key, package.pk])).status_code == 403
