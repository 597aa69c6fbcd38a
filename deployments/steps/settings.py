"""Continue's settings step: each application's settings for the target, put on every front-end
beside its new release before the switch (which points the application at them with its release).

The message to an agent carries no value: only where to fetch the document on the console and its
digest. The agent fetches it over HTTP, signing the request with its front-end's key; the console
answers only the front-ends of the plan's target, only while the plan's Continue runs. The document
holds a keyed nonce, so that its digest in a message says nothing of the values.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Any

from django.conf import settings

from deployments.catalog import settings as app_settings
from deployments.models import ApplicationVersion, DeploymentPlan
from deployments.steps import StepFailed, StepLog
from environments.agents import call_each
from environments.models import FrontEnd

DELIVERY_TIMEOUT_S = 30.0


def settings_path(frontend: FrontEnd, plan: DeploymentPlan, application: str) -> str:
    """Where an agent fetches the settings (the console's URL of the view ``agent_settings``)."""
    return f"/agents/settings/{frontend.key}/{plan.key}/{application}"


def settings_document(plan: DeploymentPlan, version: ApplicationVersion) -> bytes:
    """The settings of ``version`` in the plan's target, as its front-ends keep them (secrets included)."""
    values = app_settings.resolve(plan.target, version)
    nonce = hmac.new(
        str(settings.FIELD_ENCRYPTION_KEYS[0]).encode(),
        f"{plan.key}:{version.application.name}:{version.version}".encode(),
        hashlib.sha256,
    ).hexdigest()
    body: dict[str, Any] = {
        "application": version.application.name,
        "version": version.version,
        "environment": plan.target.name,
        "settings": values,
        "nonce": nonce,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def deliver_settings(
    *, plan: DeploymentPlan, frontends: Sequence[FrontEnd], versions: Sequence[ApplicationVersion], log: StepLog
) -> dict[str, str]:
    """Put each version's settings on every front-end; ``{application: digest}`` for the switch.
    Versions that declare no setting are left alone."""
    documents = {
        v.application.name: hashlib.sha256(settings_document(plan, v)).hexdigest()
        for v in versions
        if app_settings.declared(v)
    }
    if not documents:
        return {}
    log.info(
        f"Putting the settings of {', '.join(sorted(documents))} on {len(frontends)} front-end(s) "
        "beside the new releases."
    )
    problems = []
    for application, sha256 in sorted(documents.items()):
        calls = call_each(
            frontends,
            "agent.settings",
            kwargs_for=lambda fe, app=application, digest=sha256: {
                "releases_root": fe.releases_root,
                "application": app,
                "path": settings_path(fe, plan, app),
                "sha256": digest,
            },
            timeout_s=DELIVERY_TIMEOUT_S,
        )
        problems += [f"settings of {application} on {call.problem()}" for call in calls if not call.ok]
    if problems:
        raise StepFailed("Could not put the settings in place: " + "; ".join(problems) + ". Nothing was switched.")
    return documents
