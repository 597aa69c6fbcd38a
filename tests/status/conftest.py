"""Fixtures of the status page tests: example applications registered through the catalog, and
plans in every status, moved through the services by PlanDriver."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.actors import Actor
from deployments.catalog import services as catalog
from deployments.models import ApplicationVersion, DeploymentPlan
from tests.catalog.conftest import example_bundle
from tests.status.drive import PlanDriver, new_plan


@pytest.fixture
def artifact_store(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    return settings.ARTIFACT_ROOT


@pytest.fixture
def versions(landscape, admin_user, artifact_store) -> list[ApplicationVersion]:
    """HR Core and Leave Portal 1.0.0 in the catalog."""
    return [
        catalog.register_bundle(data=example_bundle(app, "1.0.0"), actor=Actor.person(admin_user))
        for app in ("hr_core", "leave_portal")
    ]


@pytest.fixture
def production_plan(landscape, release_user, versions) -> Callable[..., DeploymentPlan]:
    def make(notes: str = "Quarterly HR release") -> DeploymentPlan:
        return new_plan(
            actor=release_user, source=landscape["Test"], target=landscape["Production"], versions=versions, notes=notes
        )

    return make


@pytest.fixture
def driver(production_plan, release_user) -> Callable[..., PlanDriver]:
    def make(plan: DeploymentPlan | None = None, *, pace: float = 0.0) -> PlanDriver:
        return PlanDriver(plan or production_plan(), actor=release_user, pace=pace)

    return make
