"""The applications catalog: the only code that registers applications and their versions."""

from __future__ import annotations

from django.db import transaction
from packaging.version import Version

from core import audit
from core.actors import Actor
from deployments.artifacts import store as artifacts
from deployments.catalog.bundles import Bundle, BundleRefused, read_bundle
from deployments.models import Application, ApplicationVersion


def register_bundle(*, data: bytes, actor: Actor, source: str = "") -> ApplicationVersion:
    """Validate a bundle archive and register it as a new immutable version of its application.

    The application is created with its first version. A refused bundle stores nothing and raises
    ``BundleRefused``; ``source`` (a file name) only goes into the audit message.
    """
    bundle = read_bundle(data)
    return _register(bundle=bundle, data=data, actor=actor, source=source)


def _register(*, bundle: Bundle, data: bytes, actor: Actor, source: str) -> ApplicationVersion:
    manifest = bundle.manifest
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
