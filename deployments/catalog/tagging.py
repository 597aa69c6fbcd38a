"""Tag Version: turn what runs in an environment into a new immutable version of the application.

The new version's bundle is the running version's bundle with the new version number and change
log written into its manifest (the rest of ``lifetime.toml``, comments included, is kept). It is
registered through the catalog like any upload, and the environment's running version then points
at it: the code that runs did not change, only its label, so the application is no longer
"modified" there.
"""

from __future__ import annotations

import tomlkit
from django.db import transaction
from packaging.version import InvalidVersion, Version

from core import audit
from core.actors import Actor
from core.refusals import NotFound, Refusal
from deployments.catalog import services as catalog
from deployments.catalog.bundles import MANIFEST_NAME
from deployments.catalog.store import bundle_of, pack_deterministic_tar_gz
from deployments.models import Application, ApplicationVersion, RunningVersion
from deployments.state import moves
from environments import access
from environments.models import AccessLevel, Environment


class TagRefused(Refusal):
    """The version cannot be tagged as asked; the message says why."""


class NotRunning(NotFound):
    """The application does not run in that environment: there is nothing to tag."""


def tag_running_version(
    *, actor: Actor, environment: Environment, application: Application, version: str, change_log: str
) -> ApplicationVersion:
    if not actor.is_system:
        access.require(actor.user, environment, AccessLevel.DEPLOY)
    try:
        normal = str(Version(version))
    except InvalidVersion:
        raise TagRefused(f"Version {version!r} is not a PEP 440 version (e.g. 1.4.0).") from None
    if normal != version:
        raise TagRefused(f"Write the version in its normal PEP 440 form: {normal!r}, not {version!r}.")
    running = (
        RunningVersion.objects.select_related("version", "application")
        .filter(environment=environment, application=application)
        .first()
    )
    if running is None:
        raise NotRunning(f"{application.name} does not run in {environment.name}.")
    holder = moves.holder_of(environment.pk)
    if holder is not None:
        # A prepared plan recorded the running versions: relabelling one would invalidate it.
        raise TagRefused(f"{moves.TargetHeld(holder)} Tag the version once it is finished or aborted.")

    bundle = bundle_of(running.version)
    manifest = tomlkit.parse(bundle.files[MANIFEST_NAME].decode("utf-8"))
    manifest["application"]["version"] = version
    manifest["application"]["change_log"] = change_log
    files = {**bundle.files, MANIFEST_NAME: tomlkit.dumps(manifest).encode("utf-8")}
    source = f"Tag Version of {application.name} {running.version.version} running in {environment.name}"

    with transaction.atomic():
        tagged = catalog.register_bundle(data=pack_deterministic_tar_gz(files), actor=actor, source=source)
        # Compare-and-set: a Continue that switched another version in meanwhile wins.
        relabelled = RunningVersion.objects.filter(pk=running.pk, version_id=running.version_id).update(
            version=tagged, is_modified=False
        )
        if not relabelled:
            raise TagRefused(f"The running version of {application.name} changed meanwhile: try again.")
        audit.record(
            actor=actor,
            action="application_version.tagged",
            object_type="application_version",
            object_key=tagged.key,
            object_label=f"{application.name} {version}",
            environment_key=environment.key,
            changes={"running_version": [running.version.version, version]},
            message=f"{source} tagged as {version}.",
        )
    return tagged
