"""Binary deployment: a version's package posted to an environment (LifeTime's
``POST /environments/{key}/deployment``), for networks that cannot reach the console that built it.

The package is the bundle a console serves as a version's content. Its digest is checked against
the one the sender announces (when it does), it is registered in this catalog (or found there, the
same bytes under the same version), and a saved plan deploying it to the target is created: the
caller starts it and polls its status like any other plan.
"""

from __future__ import annotations

import hashlib

from packaging.version import InvalidVersion, Version

from core.actors import Actor
from core.refusals import Refusal
from deployments.catalog import services as catalog
from deployments.catalog.bundles import BundleRefused, read_bundle
from deployments.models import ApplicationVersion, DeploymentPlan
from deployments.plans import services as plans
from environments import access
from environments.models import AccessLevel, Environment


class PackageRefused(Refusal):
    """The package cannot be deployed: the sentence says why (400 in the API)."""


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _registered(name: str, version: str) -> ApplicationVersion | None:
    try:
        wanted = Version(version)
    except InvalidVersion:
        return None
    for candidate in ApplicationVersion.objects.filter(application__name=name).select_related("application"):
        try:
            if Version(candidate.version) == wanted:
                return candidate
        except InvalidVersion:
            continue
    return None


def version_of_package(*, actor: Actor, data: bytes, sha256: str) -> ApplicationVersion:
    """The catalog version these bytes are: registered now, or already there with the same digest."""
    manifest = read_bundle(data).manifest
    for _attempt in range(2):
        existing = _registered(manifest.name, manifest.version)
        if existing is not None:
            if existing.bundle_sha256 != sha256:
                raise PackageRefused(
                    f"{manifest.name} {existing.version} is already in the catalog with other content "
                    f"(sha256 {existing.bundle_sha256[:12]}…, the package is {sha256[:12]}…): "
                    "a version number is never reused."
                )
            return existing
        try:
            return catalog.register_bundle(
                data=data, actor=actor, source=f"a package posted to the API ({sha256[:12]})"
            )
        except BundleRefused:
            # Registered meanwhile by a concurrent post of the same package: found on the second pass.
            if _registered(manifest.name, manifest.version) is None:
                raise
    raise PackageRefused(f"{manifest.name} {manifest.version} could not be registered.")


def deploy_package(
    *, actor: Actor, target: Environment, data: bytes, expected_sha256: str = "", notes: str = ""
) -> DeploymentPlan:
    """A saved plan deploying the package to ``target``; refused before anything is stored when the
    digest differs from ``expected_sha256`` or the package is not a valid bundle."""
    if not actor.is_system:
        access.require(actor.user, target, AccessLevel.DEPLOY)
    if not data:
        raise PackageRefused("The request body must be the package (the bytes of a version's content).")
    sha256 = sha256_of(data)
    expected = expected_sha256.strip().lower()
    if expected and expected != sha256:
        raise PackageRefused(
            f"The package's SHA-256 is {sha256}, not the {expected} announced: it was changed or cut short on the way."
        )
    version = version_of_package(actor=actor, data=data, sha256=sha256)
    return plans.create_plan(
        actor=actor,
        source=target,
        target=target,
        operations=[plans.Operation(version.application, version)],
        notes=notes or f"Package {version.application.name} {version.version} (sha256 {sha256})",
        from_package=True,
    )
