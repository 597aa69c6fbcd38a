from __future__ import annotations

import pytest

from core.actors import Actor
from deployments.catalog import services as catalog
from lifetime.celery import app as celery_app
from tests.e2e.conftest import example_bundle


@pytest.fixture(autouse=True)
def artifact_store(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    yield settings.ARTIFACT_ROOT
    # Plans started here enqueue stages that no worker of this test will run.
    with celery_app.connection_for_write() as conn:
        conn.default_channel.queue_purge("stages")


@pytest.fixture
def versions(landscape, admin_user):
    def register(app: str, version: str):
        return catalog.register_bundle(data=example_bundle(app, version), actor=Actor.person(admin_user))

    return register
