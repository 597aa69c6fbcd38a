"""The applications catalog: the only code that registers applications and their versions."""

from __future__ import annotations

from django.db import connection, transaction
from django.db.models import ProtectedError
from packaging.version import Version

from core import audit
from core.actors import Actor
from core.refusals import NotFound, Refusal
from deployments.artifacts import store as artifacts
from deployments.catalog.bundles import Bundle, BundleRefused, read_bundle
from deployments.models import Application, ApplicationVersion, PlanOperation, RunningVersion
from deployments.statements import scripts as script_analysis


def register_bundle(*, data: bytes, actor: Actor, source: str = "") -> ApplicationVersion:
    """Validate a bundle archive and register it as a new immutable version of its application.

    The application is created with its first version. A refused bundle stores nothing and raises
    ``BundleRefused``; ``source`` (a file name) only goes into the audit message.
    """
    bundle = read_bundle(data)
    return _register(bundle=bundle, data=data, actor=actor, source=source)


def _register(*, bundle: Bundle, data: bytes, actor: Actor, source: str) -> ApplicationVersion:
    manifest = bundle.manifest
    # Parsed once, here, by PostgreSQL's parser: a script that can never run in a deployment's
    # transaction, or that reaches outside the database, refuses the bundle before anything is stored.
    analysis = script_analysis.analyse_scripts(manifest.scripts)
    refused = script_analysis.refusals(analysis)
    if refused:
        raise BundleRefused(
            f"{manifest.name} {manifest.version}: {len(refused)} SQL statement{'s' if len(refused) > 1 else ''} "
            "refused: " + " | ".join(refused)
        )
    with transaction.atomic():
        application, created = Application.objects.get_or_create(
            name=manifest.name, defaults={"kind": manifest.kind, "description": manifest.description}
        )
        # Serialise registrations of one application so that two uploads of the same version
        # cannot both pass the "never reused" check below.
        application = Application.objects.select_for_update().get(pk=application.pk)
        if application.kind != manifest.kind:
            raise BundleRefused(
                f"{manifest.name} is a {application.kind} application; this bundle says {manifest.kind}."
            )
        _claim_schema(application=application, schema=manifest.data_model.schema)
        wanted = Version(manifest.version)
        for existing in application.versions.values_list("version", flat=True):
            if Version(existing) == wanted:
                raise BundleRefused(
                    f"{manifest.name} {existing} is already registered: a version number is never reused."
                )
        # Stored only once everything above passed. Should the insert below still fail, the blob
        # is an unreferenced content-addressed file, which retention may remove; no row points to it.
        sha256, size = artifacts.put_bytes(data)
        version = ApplicationVersion.objects.create(
            application=application,
            version=manifest.version,
            change_log=manifest.change_log,
            created_by=actor.user,
            bundle_sha256=sha256,
            bundle_size=size,
            manifest=manifest.as_json(),
            native_hash=manifest.native_hash,
            script_analysis=analysis,
        )
        if manifest.description and application.description != manifest.description:
            application.description = manifest.description
            application.save(update_fields=["description"])
        audit.record(
            actor=actor,
            action="application_version.registered",
            object_type="application_version",
            object_key=version.key,
            object_label=f"{manifest.name} {manifest.version}",
            changes={"bundle_sha256": [None, sha256], **({"application": [None, manifest.name]} if created else {})},
            message=f"Registered {manifest.name} {manifest.version} ({size} bytes){f' from {source}' if source else ''}.",
        )
    return version


def _claim_schema(*, application: Application, schema: str) -> None:
    """An application's schema is its own: two applications writing one schema would each see the
    other's tables as drift, and a Continue of one could alter the other's data."""
    with connection.cursor() as cursor:
        # Two different applications registering the same new schema at once: one waits here.
        cursor.execute("select pg_advisory_xact_lock(hashtext('lifetime.schema'), hashtext(%s))", [schema])
    owner = (
        ApplicationVersion.objects.filter(manifest__data_model__schema=schema)
        .exclude(application=application)
        .select_related("application")
        .first()
    )
    if owner is not None:
        raise BundleRefused(
            f"Schema {schema!r} belongs to the application {owner.application.name}: "
            "each application declares a schema of its own."
        )


class VersionInUse(Refusal):
    """A version that runs somewhere or that a plan names stays: its plans' history needs it."""


def versions_in_use(version_ids: list[int]) -> set[int]:
    """LifeTime's InUse: running in some environment, or named by a deployment plan."""
    used = set(RunningVersion.objects.filter(version_id__in=version_ids).values_list("version_id", flat=True))
    used |= set(PlanOperation.objects.filter(version_id__in=version_ids).values_list("version_id", flat=True))
    return used


def delete_version(*, actor: Actor, version: ApplicationVersion) -> None:
    """Remove a version from the catalog when nothing uses it (LifeTime's delete of a version).

    The caller checks the right (the Deploy right somewhere, as for registering). The bundle's blob
    stays in the content-addressed store (another version may share it); retention removes orphans.
    """
    label = f"{version.application.name} {version.version}"
    with transaction.atomic():
        locked = ApplicationVersion.objects.select_for_update().filter(pk=version.pk).first()
        if locked is None:
            raise NotFound(f"{label} is no longer in the catalog.")
        if versions_in_use([locked.pk]):
            raise VersionInUse(f"{label} is in use (it runs in an environment or a deployment plan names it).")
        try:
            with transaction.atomic():
                locked.delete()
        except ProtectedError:
            raise VersionInUse(f"{label} is still referenced by the console's records.") from None
        audit.record(
            actor=actor,
            action="application_version.deleted",
            object_type="application_version",
            object_key=version.key,
            object_label=label,
            changes={"bundle_sha256": [version.bundle_sha256, None]},
            message=f"Deleted {label} from the catalog.",
        )
