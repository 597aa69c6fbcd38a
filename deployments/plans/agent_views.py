"""What agents read from the console besides artifacts: an application's settings for the
environment of their front-end, during a Continue there. Nobody else may read them."""

from __future__ import annotations

import hmac
import logging
import time

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from agent import signing
from deployments.models import DeploymentPlan, OperationKind
from deployments.steps.settings import settings_document, settings_path
from environments.models import FrontEnd

logger = logging.getLogger("lifetime.agents")


def _refuse(request: HttpRequest, status: int, why: str) -> HttpResponse:
    # Neither the token nor the signature presented is logged: only that a request was refused.
    logger.warning("settings request refused (%s): %s from %s", status, why, request.META.get("REMOTE_ADDR", "?"))
    return HttpResponse(f"{why}\n", status=status, content_type="text/plain")


@require_GET
def agent_settings(request: HttpRequest, frontend_key, plan_key, application: str) -> HttpResponse:
    scheme, _, presented = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        presented.strip().encode(), str(settings.AGENT_TOKEN).encode()
    ):
        return _refuse(request, 403, "no or wrong agent token")
    frontend = FrontEnd.objects.filter(key=frontend_key, enabled=True).select_related("environment").first()
    if frontend is None or not frontend.agent_key():
        return _refuse(request, 404, "no such front-end")
    path = request.path.rstrip("/")
    try:
        signing.verify_request(
            key=frontend.agent_key(),
            header=request.META.get("HTTP_X_LIFETIME_AGENT_SIGNATURE", ""),
            path=path,
            now=time.time(),
        )
    except signing.SignatureRefused as exc:
        return _refuse(request, 403, exc.reason)
    plan = DeploymentPlan.objects.filter(key=plan_key, target=frontend.environment).select_related("target").first()
    if plan is None or not plan.is_running:
        return _refuse(request, 404, "no deployment running for this front-end")
    op = (
        plan.operations.filter(application__name=application, kind=OperationKind.DEPLOY, version__isnull=False)
        .select_related("version", "version__application")
        .first()
    )
    if op is None or path != settings_path(frontend, plan, application):
        return _refuse(request, 404, "the plan does not deploy this application")
    response = HttpResponse(settings_document(plan, op.version), content_type="application/json")
    response["Cache-Control"] = "private, no-store"
    return response
