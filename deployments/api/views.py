"""The API's views: parse the request, check the right, call a service or a query, serialize.

Rights are the console's (environments.access): view on an environment to read about it, deploy
on the target to create, change, start, continue, abort or delete a plan, to tag a version or to
post a package; deploy on some environment to fetch or delete a version's content (as for
registering one in the catalog).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

from django.conf import settings
from django.db.models import Count, Prefetch, Q, QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from packaging.version import InvalidVersion, Version

from core import audit
from core.actors import Actor
from core.refusals import Refusal
from core.request_limits import accepts_upload
from deployments.api import downloads, serializers
from deployments.api.auth import endpoint
from deployments.api.errors import ApiError, json_body
from deployments.api.paging import MAX_PAGE, Page
from deployments.catalog import services as catalog
from deployments.catalog import tagging
from deployments.models import (
    Application,
    ApplicationVersion,
    DeploymentPlan,
    GeneratedSql,
    MobilePackage,
    PlanOperation,
    RunningVersion,
)
from deployments.plans import approvals, packages
from deployments.plans import services as plans
from deployments.stages import drift
from deployments.stages.estimate import continue_estimate
from deployments.state import machine
from environments import access
from environments.models import AccessLevel, DeploymentZone, Environment, FrontEnd

# --- parsing -------------------------------------------------------------------------------


def flag(request: HttpRequest, name: str, default: bool = False) -> bool:
    """Query booleans arrive as True/False (capitalised, from .NET clients): any case is accepted."""
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise ApiError(400, f"{name} must be True or False, not {raw!r}.")


def day(request: HttpRequest, name: str) -> dt.date | None:
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return None
    # fromisoformat alone would also take 20240501 or 2024-W18-3.
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        try:
            return dt.date.fromisoformat(raw)
        except ValueError:
            pass
    raise ApiError(400, f"{name} must be a date written YYYY-MM-DD, not {raw!r}.")


def parse_key(raw: Any, what: str, *, status: int = 404) -> uuid.UUID:
    """A key from the path (404 when it cannot be one) or from a body (400)."""
    if isinstance(raw, str):
        try:
            return uuid.UUID(raw.strip())
        except ValueError:
            pass
    if status == 404:
        raise ApiError(404, f"No {what} with key {raw!r}.")
    raise ApiError(status, f"{what[0].upper()}{what[1:]} key {raw!r} is not a key (a UUID).")


def environment_or_404(raw: str, *, status: int = 404, missing: int = 404) -> Environment:
    """``status`` answers a malformed key, ``missing`` an unknown one."""
    env_key = parse_key(raw, "environment", status=status)
    environment = Environment.objects.filter(key=env_key).first()
    if environment is None:
        raise ApiError(missing, f"No environment with key {str(env_key)!r}.")
    return environment


def application_or_404(raw: str) -> Application:
    app_key = parse_key(raw, "application")
    application = Application.objects.filter(key=app_key).first()
    if application is None:
        raise ApiError(404, f"No application with key {str(app_key)!r}.")
    return application


def plan_or_404(request: HttpRequest, raw: str, *, level: int = AccessLevel.VIEW) -> DeploymentPlan:
    plan_key = parse_key(raw, "deployment")
    plan = DeploymentPlan.objects.select_related("source", "target").filter(key=plan_key).first()
    if plan is None:
        raise ApiError(404, f"No deployment with key {str(plan_key)!r}.")
    access.require(request.user, plan.target, level)
    return plan


def viewable_environment_ids(request: HttpRequest) -> list[int]:
    return [pk for pk, level in access.levels_for(request.user).items() if level >= AccessLevel.VIEW]


def require_some_view(request: HttpRequest) -> list[int]:
    """Applications are not per environment: reading them needs the view right somewhere."""
    ids = viewable_environment_ids(request)
    if not ids:
        raise ApiError(403, "The service account has no right on any environment.")
    return ids


def no_content() -> HttpResponse:
    return HttpResponse(status=204)


def accepted() -> HttpResponse:
    # LifeTime answers 202 with an empty body; clients look at the code only.
    return HttpResponse(status=202)


# --- environments --------------------------------------------------------------------------


@endpoint("GET")
def environment_list(request: HttpRequest) -> HttpResponse:
    environments = (
        Environment.objects.filter(pk__in=viewable_environment_ids(request))
        .annotate(frontend_count=Count("frontends", filter=Q(frontends__enabled=True)))
        .order_by("order")
    )
    data = [
        serializers.environment(
            env,
            frontends=env.frontend_count,
            details_url=request.build_absolute_uri(reverse("environments:detail", args=[env.key])),
        )
        for env in environments
    ]
    return JsonResponse(data, safe=False) if data else no_content()


def _environment_json(request: HttpRequest, environment: Environment) -> dict[str, Any]:
    return serializers.environment(
        environment,
        frontends=environment.frontends.filter(enabled=True).count(),
        details_url=request.build_absolute_uri(reverse("environments:detail", args=[environment.key])),
    )


@endpoint("GET")
def environment_detail(request: HttpRequest, env_key: str) -> HttpResponse:
    environment = environment_or_404(env_key)
    access.require(request.user, environment, AccessLevel.VIEW)
    return JsonResponse(_environment_json(request, environment))


@endpoint("GET")
def environment_applications(request: HttpRequest, env_key: str) -> HttpResponse:
    """The applications running in the environment; AppStatusInEnvs holds this environment only."""
    include_env_status = flag(request, "IncludeEnvStatus")
    include_modules = flag(request, "IncludeModules")
    environment = environment_or_404(env_key)
    access.require(request.user, environment, AccessLevel.VIEW)
    running = list(
        RunningVersion.objects.filter(environment=environment)
        .select_related("environment", "version", "application")
        .order_by("application__name")
    )
    if not running:
        return no_content()
    packages = _mobile_packages([rv.application_id for rv in running], [environment.pk]) if include_env_status else {}
    data = [
        serializers.application(
            rv.application,
            statuses=[
                serializers.app_status_in_env(rv, packages=packages.get((rv.application_id, rv.environment_id), []))
            ]
            if include_env_status
            else None,
            include_modules=include_modules,
        )
        for rv in running
    ]
    return JsonResponse(data, safe=False)


def _statuses(application: Application, environment_ids: list[int]) -> list[dict[str, Any]]:
    running = (
        RunningVersion.objects.filter(application=application, environment_id__in=environment_ids)
        .select_related("environment", "version", "application")
        .order_by("environment__order")
    )
    packages = _mobile_packages([application.pk], environment_ids)
    return [
        serializers.app_status_in_env(rv, packages=packages.get((rv.application_id, rv.environment_id), []))
        for rv in running
    ]


def _mobile_packages(app_ids: list[int], environment_ids: list[int]) -> dict[tuple[int, int], list[MobilePackage]]:
    found: dict[tuple[int, int], list[MobilePackage]] = {}
    for package in MobilePackage.objects.filter(application_id__in=app_ids, environment_id__in=environment_ids):
        found.setdefault((package.application_id, package.environment_id), []).append(package)
    return found


@endpoint("GET")
def environment_application(request: HttpRequest, env_key: str, app_key: str) -> HttpResponse:
    # Whatever IncludeEnvStatus says, this environment's entry is there: clients read the running
    # version from it. The flag is still checked, as everywhere.
    flag(request, "IncludeEnvStatus")
    include_modules = flag(request, "IncludeModules")
    environment = environment_or_404(env_key)
    access.require(request.user, environment, AccessLevel.VIEW)
    application = application_or_404(app_key)
    statuses = _statuses(application, [environment.pk])
    if not statuses:
        raise ApiError(404, f"{application.name} does not run in {environment.name}.")
    return JsonResponse(serializers.application(application, statuses=statuses, include_modules=include_modules))


@endpoint("GET")
def deployment_zones(request: HttpRequest, env_key: str) -> HttpResponse:
    environment = environment_or_404(env_key)
    access.require(request.user, environment, AccessLevel.VIEW)
    zones = [serializers.deployment_zone(environment)]
    zones += [serializers.named_zone(zone) for zone in environment.zones.order_by("name")]
    return JsonResponse(zones, safe=False)


@endpoint("GET")
def frontends(request: HttpRequest, env_key: str) -> HttpResponse:
    """Extension: the environment's front-ends, with what they run where it differs from the record."""
    environment = environment_or_404(env_key)
    access.require(request.user, environment, AccessLevel.VIEW)
    rows = environment.frontends.order_by("name")
    return JsonResponse([serializers.frontend(fe) for fe in rows], safe=False)


@endpoint("POST")
def frontend_put_back(request: HttpRequest, env_key: str, frontend_key: str) -> HttpResponse:
    """Extension: Put back one drifted front-end on the recorded versions (manage right, audited)."""
    environment = environment_or_404(env_key)
    access.require(request.user, environment, AccessLevel.MANAGE)
    fe_key = parse_key(frontend_key, "front-end")
    fe = FrontEnd.objects.select_related("environment").filter(key=fe_key, environment=environment).first()
    if fe is None:
        raise ApiError(404, f"No front-end with key {str(fe_key)!r} in {environment.name}.")
    fe = drift.put_back(actor=Actor.of_request(request), frontend=fe)
    return JsonResponse(serializers.frontend(fe))


@endpoint("POST")
def tag_version(request: HttpRequest, env_key: str, app_key: str) -> HttpResponse:
    environment = environment_or_404(env_key)
    access.require(request.user, environment, AccessLevel.DEPLOY)
    application = application_or_404(app_key)
    body = json_body(request)
    version, change_log = body.get("Version"), body.get("ChangeLog", "")
    if not isinstance(version, str) or not version.strip():
        raise ApiError(400, "Version is required: the new version number, e.g. 1.2.0.")
    if change_log is None:
        change_log = ""
    if not isinstance(change_log, str):
        raise ApiError(400, "ChangeLog must be a string.")
    mobile_versions = body.get("MobileVersions")
    if mobile_versions is not None and not isinstance(mobile_versions, list):
        raise ApiError(400, "MobileVersions must be a list or null.")
    tagged = tagging.tag_running_version(
        actor=Actor.of_request(request),
        environment=environment,
        application=application,
        version=version.strip(),
        change_log=change_log,
    )
    return JsonResponse({"ApplicationVersionKey": serializers.key(tagged.key)}, status=201)


# --- applications --------------------------------------------------------------------------


@endpoint("GET")
def application_list(request: HttpRequest) -> HttpResponse:
    include_env_status = flag(request, "IncludeEnvStatus")
    include_modules = flag(request, "IncludeModules")
    env_ids = viewable_environment_ids(request)
    if not env_ids:
        return no_content()
    page = Page(request, Application.objects.order_by("name"))
    applications = list(page.items)
    statuses: dict[int, list[dict[str, Any]]] = {app.pk: [] for app in applications}
    if include_env_status:
        packages = _mobile_packages([app.pk for app in applications], env_ids)
        running = (
            RunningVersion.objects.filter(environment_id__in=env_ids, application__in=applications)
            .select_related("environment", "version", "application")
            .order_by("environment__order")
        )
        for rv in running:
            statuses.setdefault(rv.application_id, []).append(
                serializers.app_status_in_env(rv, packages=packages.get((rv.application_id, rv.environment_id), []))
            )
    data = [
        serializers.application(
            app, statuses=statuses[app.pk] if include_env_status else None, include_modules=include_modules
        )
        for app in applications
    ]
    return page.decorate(JsonResponse(data, safe=False)) if data else no_content()


@endpoint("GET")
def application_detail(request: HttpRequest, app_key: str) -> HttpResponse:
    include_env_status = flag(request, "IncludeEnvStatus")
    include_modules = flag(request, "IncludeModules")
    env_ids = require_some_view(request)
    application = application_or_404(app_key)
    statuses = _statuses(application, env_ids) if include_env_status else None
    return JsonResponse(serializers.application(application, statuses=statuses, include_modules=include_modules))


def _versions_in_use(versions: list[ApplicationVersion]) -> set[int]:
    """LifeTime's InUse: running somewhere, or part of a deployment plan."""
    return catalog.versions_in_use([v.pk for v in versions])


@endpoint("GET")
def application_versions(request: HttpRequest, app_key: str) -> HttpResponse:
    raw_limit = request.GET.get("MaximumVersionsToReturn", "")
    limit: int | None = None
    if raw_limit != "":
        try:
            limit = int(raw_limit)
        except ValueError:
            raise ApiError(400, f"MaximumVersionsToReturn must be a whole number, not {raw_limit!r}.") from None
        if limit < 0:
            raise ApiError(400, "MaximumVersionsToReturn cannot be negative.")
    require_some_view(request)
    application = application_or_404(app_key)
    versions = list(application.versions.select_related("application"))
    # Newest first as clients compare them: by version number, then by creation.
    versions.sort(key=lambda v: (_version_order(v.version), v.created_at), reverse=True)
    # Never unbounded: without MaximumVersionsToReturn, the newest MAX_PAGE.
    versions = versions[: min(limit, MAX_PAGE) if limit is not None else MAX_PAGE]
    if not versions:
        return no_content()
    in_use = _versions_in_use(versions)
    return JsonResponse(
        [serializers.application_version(v, in_use=v.pk in in_use) for v in versions],
        safe=False,
    )


def _version_order(text: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        return Version("0")


def _version_or_404(app_key: str, version_key: str) -> ApplicationVersion:
    application = application_or_404(app_key)
    wanted = parse_key(version_key, "application version")
    version = application.versions.select_related("application").filter(key=wanted).first()
    if version is None:
        raise ApiError(404, f"{application.name} has no version with key {str(wanted)!r}.")
    return version


def require_deploy_somewhere(request: HttpRequest) -> None:
    """A version's code (its content, deleting it) is for whoever may deploy somewhere."""
    if not downloads.may_download(request.user):
        raise ApiError(403, "The service account needs the Deploy right on at least one environment.")


@endpoint("GET", "DELETE")
def application_version(request: HttpRequest, app_key: str, version_key: str) -> HttpResponse:
    if request.method == "DELETE":
        require_deploy_somewhere(request)
        version = _version_or_404(app_key, version_key)
        catalog.delete_version(actor=Actor.of_request(request), version=version)
        return no_content()
    require_some_view(request)
    version = _version_or_404(app_key, version_key)
    return JsonResponse(serializers.application_version(version, in_use=version.pk in _versions_in_use([version])))


@endpoint("GET")
def application_version_content(request: HttpRequest, app_key: str, version_key: str) -> HttpResponse:
    """A time-limited signed link to the version's package (its bundle), LifeTime's ``{"url": ...}``."""
    require_deploy_somewhere(request)
    version = _version_or_404(app_key, version_key)
    url, expires = downloads.link_for(request, version, request.service_account)
    audit.record(
        actor=Actor.of_request(request),
        action="application_version.content_link",
        object_type="application_version",
        object_key=version.key,
        object_label=f"{version.application.name} {version.version}",
        message=f"A download link to {version.application.name} {version.version} was issued, "
        f"valid until {serializers.date(expires)}.",
    )
    return JsonResponse(
        {
            "url": url,
            "Sha256": version.bundle_sha256,
            "Size": version.bundle_size,
            "ExpiresOn": serializers.date(expires),
        }
    )


# --- deployments ---------------------------------------------------------------------------


def _plans() -> QuerySet[DeploymentPlan]:
    return DeploymentPlan.objects.select_related(
        "source", "target", "created_by", "started_by", "aborted_by"
    ).prefetch_related(
        Prefetch(
            "operations", queryset=PlanOperation.objects.select_related("application", "version", "zone").order_by("id")
        )
    )


@endpoint("GET", "POST")
def deployments(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _create_deployment(request)
    min_date, max_date = day(request, "MinDate"), day(request, "MaxDate")
    if min_date and max_date and min_date > max_date:
        raise ApiError(400, "MinDate is after MaxDate.")
    env_ids = viewable_environment_ids(request)
    target_raw = request.GET.get("TargetEnvironmentKey", "")
    qs = _plans().filter(target_id__in=env_ids)
    if target_raw:
        target = environment_or_404(target_raw, status=400, missing=400)
        access.require(request.user, target, AccessLevel.VIEW)
        qs = qs.filter(target=target)
    if min_date or max_date:
        dated = Q()
        if min_date:
            dated &= Q(created_at__date__gte=min_date)
        if max_date:
            dated &= Q(created_at__date__lte=max_date)
        # A plan prepared on Friday must still be found on Monday, whatever window the client asks for.
        qs = qs.filter(dated | Q(state__in=machine.NOT_OVER))
    page = Page(request, qs.order_by("-created_at", "-id"))
    return page.decorate(JsonResponse([serializers.deployment(plan) for plan in page.items], safe=False))


def _create_deployment(request: HttpRequest) -> HttpResponse:
    body = json_body(request)
    for name in ("SourceEnvironmentKey", "TargetEnvironmentKey"):
        if not body.get(name):
            raise ApiError(400, f"{name} is required.")
    source = environment_or_404(body["SourceEnvironmentKey"], status=400)
    target = environment_or_404(body["TargetEnvironmentKey"], status=400)
    # The right comes before the contents: a token without deploy learns nothing more.
    access.require(request.user, target, AccessLevel.DEPLOY)
    access.require(request.user, source, AccessLevel.VIEW)
    notes = body.get("Notes") or ""
    if not isinstance(notes, str):
        raise ApiError(400, "Notes must be a string.")
    operations = _operations(body, target)
    if not operations:
        raise ApiError(400, "ApplicationOperations must list at least one ApplicationVersionKey.")
    plan = plans.create_plan(
        actor=Actor.of_request(request), source=source, target=target, operations=operations, notes=notes
    )
    # LifeTime answers the bare key; a JSON string is what every client parses.
    response = JsonResponse(serializers.key(plan.key), status=201, safe=False)
    response["Location"] = reverse("lifetimeapi:deployment", args=[serializers.key(plan.key)])
    return response


def _zone(raw: Any, target: Environment) -> DeploymentZone | None:
    """A DeploymentZoneKey: "" / null / the default zone's key (every front-end), or a zone of the target."""
    if raw in (None, "") or str(raw).lower() == serializers.default_zone_key(target):
        return None
    try:
        key = uuid.UUID(str(raw).strip())
    except ValueError:
        raise ApiError(400, f"Deployment zone {raw!r} is not a zone of {target.name}.") from None
    zone = DeploymentZone.objects.filter(environment=target, key=key).first()
    if zone is None:
        raise ApiError(400, f"Deployment zone {raw!r} is not a zone of {target.name}.")
    return zone


def _operations(body: dict[str, Any], target: Environment) -> list[plans.Operation]:
    if "ApplicationOperations" in body and body["ApplicationOperations"] is not None:
        operations = body["ApplicationOperations"]
        if not isinstance(operations, list) or not all(isinstance(op, dict) for op in operations):
            raise ApiError(400, "ApplicationOperations must be a list of {ApplicationVersionKey, DeploymentZoneKey}.")
        zones = [_zone(op.get("DeploymentZoneKey"), target) for op in operations]
        raw_keys = [op.get("ApplicationVersionKey") for op in operations]
    elif "ApplicationVersionKeys" in body and body["ApplicationVersionKeys"] is not None:
        raw_keys = body["ApplicationVersionKeys"]
        if not isinstance(raw_keys, list):
            raise ApiError(400, "ApplicationVersionKeys must be a list of keys.")
        zones = [None] * len(raw_keys)
    else:
        raise ApiError(400, "ApplicationOperations is required.")
    keys = [parse_key(raw, "application version", status=400) for raw in raw_keys]
    found = {v.key: v for v in ApplicationVersion.objects.select_related("application").filter(key__in=keys)}
    missing = [str(k) for k in keys if k not in found]
    if missing:
        raise ApiError(400, "No application version with key " + ", ".join(repr(k) for k in missing) + ".")
    return [plans.Operation(found[k].application, found[k], zone) for k, zone in zip(keys, zones, strict=True)]


@endpoint("GET", "PUT", "DELETE")
def deployment(request: HttpRequest, plan_key: str) -> HttpResponse:
    if request.method == "DELETE":
        plan = plan_or_404(request, plan_key, level=AccessLevel.DEPLOY)
        plans.delete_plan(actor=Actor.of_request(request), plan=plan)
        return no_content()
    if request.method == "PUT":
        return _update_deployment(request, plan_key)
    plan = plan_or_404(request, plan_key)
    plan = _plans().get(pk=plan.pk)
    running = {rv.application_id: rv for rv in RunningVersion.objects.filter(environment=plan.target)}
    conflicts = plans.validate_plan(plan).errors if plan.is_saved else []
    return JsonResponse(serializers.deployment_details(plan, running=running, conflicts=conflicts))


def _update_deployment(request: HttpRequest, plan_key: str) -> HttpResponse:
    """Replace a saved plan's operations and notes (LifeTime's PUT; only a saved plan changes)."""
    plan = plan_or_404(request, plan_key, level=AccessLevel.DEPLOY)
    body = json_body(request)
    notes = body.get("Notes", plan.notes)
    if notes is None:
        notes = ""
    if not isinstance(notes, str):
        raise ApiError(400, "Notes must be a string.")
    if body.get("ApplicationOperations") is None and body.get("ApplicationVersionKeys") is None:
        operations = [
            plans.Operation(op.application, op.version, op.zone)
            for op in plan.operations.select_related("application", "version", "zone")
        ]
    else:
        operations = _operations(body, plan.target)
        if not operations:
            raise ApiError(400, "ApplicationOperations must list at least one ApplicationVersionKey.")
    plans.update_plan(actor=Actor.of_request(request), plan=plan, operations=operations, notes=notes)
    return JsonResponse(serializers.deployment(_plans().get(pk=plan.pk)))


@endpoint("POST")
def deployment_start(request: HttpRequest, plan_key: str) -> HttpResponse:
    # Both are accepted with no effect (docs/api.md): the console deploys applications whole, so no
    # consumer is ever left outdated to redeploy, and a plan with validation errors never starts.
    flag(request, "RedeployOutdated")
    flag(request, "ContinueWithErrors")
    plan = plan_or_404(request, plan_key, level=AccessLevel.DEPLOY)
    # Optional {"Reason": "..."}: Deploy Now outside an enforced window or during a freeze, or
    # versions that do not run in the source on a target that deploys only those (the manage
    # right is needed for a freeze and for those versions); kept in the audit trail.
    reason = _string_field(_start_body(request), "Reason")
    try:
        plans.start_plan(actor=Actor.of_request(request), plan=plan, override_reason=reason[:500])
    except (plans.Frozen, plans.OutsideWindow, plans.NotInSource) as exc:
        raise _with_api_hint(exc, can_schedule=False) from None
    return accepted()


NEXT_WINDOW = "NextWindow"


def _start_body(request: HttpRequest) -> dict[str, Any]:
    # LifeTime's start takes no body: whatever a client sends that is not a JSON object is ignored.
    try:
        return json_body(request) if request.body else {}
    except ApiError:
        return {}


def _string_field(body: dict[str, Any], name: str) -> str:
    value = body.get(name) or ""
    if not isinstance(value, str):
        raise ApiError(400, f"{name} must be a string.")
    return value


def _with_api_hint(exc: Refusal, *, can_schedule: bool) -> ApiError:
    """The service's sentence, plus the parameter of this call that would help."""
    if isinstance(exc, plans.NotInSource):
        hint = 'An account with the manage right on the target may give {"Reason": "..."} in the body.'
    elif isinstance(exc, plans.Frozen):
        hint = 'An account with the manage right on the target may give {"Reason": "..."} in the body.'
    elif isinstance(exc, plans.EstimateDoesNotFit):
        hint = 'An account with the manage right on the target may give {"Reason": "..."} in the body.'
    elif isinstance(exc, plans.OutsideWindow):
        hint = 'Give {"Reason": "..."} in the body to go on now' + (
            f', or {{"ContinueAt": "{NEXT_WINDOW}"}} to continue when the next window opens.' if can_schedule else "."
        )
    else:
        return exc if isinstance(exc, ApiError) else ApiError(exc.http_status, exc.message)
    return ApiError(400, f"{exc.message} {hint}")


@endpoint("POST", conflict_is_409=True)
def deployment_continue(request: HttpRequest, plan_key: str) -> HttpResponse:
    plan = plan_or_404(request, plan_key, level=AccessLevel.DEPLOY)
    # Optional, documented extensions:
    # {"Reason": "..."}: continue although the estimate does not fit the window (manage right),
    #   outside an enforced window, or during a freeze (manage right); kept in the audit trail.
    # {"ContinueAt": "NextWindow" | ISO 8601}: schedule Continue instead (the next window outside
    #   every freeze, or that moment); the plan stays prepared until then.
    body = json_body(request) if request.body else {}
    reason = _string_field(body, "Reason")
    continue_at = _string_field(body, "ContinueAt").strip()
    actor = Actor.of_request(request)
    if continue_at:
        at = None
        if continue_at != NEXT_WINDOW:
            try:
                at = parse_datetime(continue_at) if "T" in continue_at else None
            except ValueError:  # well-formed but impossible, such as February 30th
                at = None
            if at is None or timezone.is_naive(at):
                raise ApiError(
                    400, f'ContinueAt must be "{NEXT_WINDOW}" or a date and time with its offset (ISO 8601).'
                )
        plans.schedule_continue(actor=actor, plan=plan, at=at)
        return accepted()
    try:
        plans.continue_plan(actor=actor, plan=plan, override_reason=reason[:500])
    except (plans.Frozen, plans.OutsideWindow, plans.EstimateDoesNotFit) as exc:
        raise _with_api_hint(exc, can_schedule=plan.is_prepared) from None
    return accepted()


def _comment(request: HttpRequest) -> str:
    comment = (json_body(request).get("Comment") or "") if request.body else ""
    if not isinstance(comment, str):
        raise ApiError(400, "Comment must be a string.")
    return comment[:2000]


@endpoint("POST", conflict_is_409=True)
def deployment_approve(request: HttpRequest, plan_key: str) -> HttpResponse:
    # Extension of the console: an approval of the plan as prepared, by an account other than the
    # one that prepared or scheduled it; 409 when this account already approved.
    plan = plan_or_404(request, plan_key)
    comment = _comment(request)
    approvals.approve(actor=Actor.of_request(request), plan=plan, comment=comment)
    return JsonResponse(approvals.status_of(plan).as_api())


@endpoint("POST", conflict_is_409=True)
def deployment_reject(request: HttpRequest, plan_key: str) -> HttpResponse:
    plan = plan_or_404(request, plan_key)
    comment = _comment(request)
    approvals.reject(actor=Actor.of_request(request), plan=plan, comment=comment)
    return JsonResponse(approvals.status_of(plan).as_api())


@endpoint("POST")
def deployment_abort(request: HttpRequest, plan_key: str) -> HttpResponse:
    plan = plan_or_404(request, plan_key, level=AccessLevel.DEPLOY)
    plans.abort_plan(actor=Actor.of_request(request), plan=plan, reason="Abort (API)")
    return accepted()


@endpoint("POST", conflict_is_409=True)
def deployment_rollback(request: HttpRequest, plan_key: str) -> HttpResponse:
    """Beyond LifeTime: switch the target back to what ran before a finished plan (an optional
    {"ApplicationKeys": [...]} rolls back only those of its applications)."""
    plan = plan_or_404(request, plan_key, level=AccessLevel.DEPLOY)
    applications = None
    if request.body:
        keys = json_body(request).get("ApplicationKeys")
        if keys is not None:
            if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                raise ApiError(400, "ApplicationKeys must be a list of application keys.")
            applications = [application_or_404(k).name for k in keys]
    plans.rollback_plan(actor=Actor.of_request(request), plan=plan, applications=applications)
    return accepted()


@endpoint("GET")
def deployment_status(request: HttpRequest, plan_key: str) -> HttpResponse:
    plan = plan_or_404(request, plan_key)
    estimate = None
    if plan.is_prepared:
        generated = list(GeneratedSql.objects.filter(plan=plan))
        frontends = plan.target.frontends.filter(enabled=True).count()
        estimate = continue_estimate(plan, generated, frontends).as_api()
    status = approvals.status_of(plan) if plan.target.approvals_required and plan.prepared_at else None
    return JsonResponse(
        serializers.deployment_status(
            plan,
            log=list(plan.log_lines.order_by("seq")),
            continue_estimate=estimate,
            approvals=status.as_api() if status is not None else None,
        )
    )


# --- binary deployment -----------------------------------------------------------------------


@accepts_upload(settings.MAX_UPLOAD_BODY_BYTES)
@endpoint("POST")
def environment_deployment(request: HttpRequest, env_key: str) -> HttpResponse:
    """LifeTime's binary deployment: the body is a version's package (application/octet-stream).

    Answers 201 with the key of a saved plan that deploys it to the environment; the client then
    reads it, starts it and polls its status. ``X-Content-SHA256`` (or ``?Sha256=``), when sent, must
    be the package's digest.
    """
    environment = environment_or_404(env_key)
    access.require(request.user, environment, AccessLevel.DEPLOY)
    # Read as a stream: the body was already bounded by its declared length (core.request_limits).
    data = request.read()
    expected = request.headers.get("X-Content-SHA256", "") or request.GET.get("Sha256", "")
    plan = packages.deploy_package(
        actor=Actor.of_request(request), target=environment, data=data, expected_sha256=expected
    )
    response = JsonResponse(serializers.key(plan.key), status=201, safe=False)
    response["Location"] = reverse("lifetimeapi:deployment", args=[serializers.key(plan.key)])
    return response
