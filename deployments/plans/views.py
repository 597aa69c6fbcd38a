"""Pages: the Applications overview, the plans list, a new plan, and every button of a plan."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import BadRequest, PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from core.actors import Actor
from core.refusals import Refusal
from deployments.models import Application, ApplicationVersion, DeploymentPlan, RunningVersion
from deployments.plans import approvals, selectors
from deployments.plans import services as plans
from deployments.plans.production_guard import recent_authentication_on_production
from deployments.state import machine
from environments import access
from environments.models import AccessLevel, DeploymentZone, Environment


def plan_for(request: HttpRequest, key, level: int = AccessLevel.VIEW) -> DeploymentPlan:
    plan = get_object_or_404(
        DeploymentPlan.objects.select_related(
            "source", "target", "created_by", "started_by", "continued_by", "aborted_by"
        ),
        key=key,
    )
    if not access.can(request.user, plan.target, AccessLevel.VIEW):
        raise PermissionDenied("You have no access to this plan's target environment.")
    access.require(request.user, plan.target, level)
    return plan


@login_required
def applications_overview(request: HttpRequest) -> HttpResponse:
    environments = list(access.visible_environments(request.user))
    levels = access.levels_for(request.user)
    neighbours = [
        {"source": a, "target": b, "can_deploy": levels.get(b.pk, 0) >= AccessLevel.DEPLOY}
        for a, b in zip(environments, environments[1:], strict=False)
    ]
    return render(
        request,
        "deployments/overview.html",
        {
            "environments": environments,
            "neighbours": neighbours,
            "rows": selectors.overview(environments),
            "holders": selectors.holders(environments),
        },
    )


@login_required
def plan_list(request: HttpRequest) -> HttpResponse:
    """Deployment plans, newest first: filters, search, pages; the same few queries for 10 or 10,000 plans."""
    env_ids = [pk for pk, level in access.levels_for(request.user).items() if level >= AccessLevel.VIEW]
    environments = list(access.visible_environments(request.user))
    filters = selectors.PlanFilters.from_query(request.GET)
    qs = selectors.filter_plans(selectors.plans_for(env_ids), filters)
    # Paginate the ids, then load the page's 25 plans by id, in one statement: a deep page's OFFSET
    # then walks an index of ids instead of joining users and environments to every skipped plan.
    page = Paginator(qs.values_list("pk", flat=True), 25).get_page(request.GET.get("page"))
    holders = selectors.holders(environments)
    held_by = {plan.pk: env for env in environments if (plan := holders.get(env.pk))}
    rows = [(plan, *plan.tag, held_by.get(plan.pk)) for plan in qs.filter(pk__in=page.object_list)]
    return render(
        request,
        "deployments/plan_list.html",
        {
            "page": page,
            "rows": rows,
            "environments": environments,
            "holders": holders,
            "filters": filters,
            "query_string": filters.query_string(),
            "applications": Application.objects.order_by("name").only("key", "name"),
            "statuses": [(value, label) for value, (label, _states) in machine.FILTERS.items()],
        },
    )


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def candidates(source: Environment, target: Environment) -> list[dict]:
    running_src = {
        rv.application_id: rv for rv in RunningVersion.objects.filter(environment=source).select_related("version")
    }
    running_tgt = {
        rv.application_id: rv for rv in RunningVersion.objects.filter(environment=target).select_related("version")
    }
    versions: dict[int, list[ApplicationVersion]] = {}
    for version in ApplicationVersion.objects.select_related("application").order_by("-created_at"):
        versions.setdefault(version.application_id, []).append(version)
    rows = []
    for app in Application.objects.filter(pk__in=versions.keys()).order_by("name"):
        src, tgt = running_src.get(app.pk), running_tgt.get(app.pk)
        rows.append({"application": app, "source": src, "target": tgt, "versions": versions[app.pk]})
    return rows


def _operations_from(request: HttpRequest) -> list[plans.Operation]:
    ops = []
    for app in Application.objects.filter(
        pk__in=[int(v) for v in request.POST.getlist("include") if v.isascii() and v.isdigit()]
    ):
        version_key = request.POST.get(f"version_{app.pk}", "")
        if version_key == "undeploy":
            ops.append(plans.Operation(app, None))
            continue
        version = (
            ApplicationVersion.objects.filter(application=app, key=version_key).first()
            if _is_uuid(version_key)
            else None
        )
        if version is None:
            raise plans.PlanRefused(f"Choose a version of {app.name}.")
        zone_key = request.POST.get(f"zone_{app.pk}", "")
        zone = DeploymentZone.objects.filter(key=zone_key).first() if _is_uuid(zone_key) else None
        if zone_key and zone is None:
            raise plans.PlanRefused(f"Choose a deployment zone of the target for {app.name}.")
        ops.append(plans.Operation(app, version, zone))
    return ops


def _environment_named_by(request: HttpRequest, name: str) -> Environment:
    raw = request.GET.get(name) or request.POST.get(name) or ""
    if not _is_uuid(raw):
        raise BadRequest(f"{name} must be the key of an environment (a UUID), not {raw[:80]!r}.")
    return get_object_or_404(Environment, key=raw)


@login_required
def plan_create(request: HttpRequest) -> HttpResponse:
    source = _environment_named_by(request, "source")
    target = _environment_named_by(request, "target")
    access.require(request.user, target, AccessLevel.DEPLOY)
    access.require(request.user, source, AccessLevel.VIEW)
    if request.method == "POST":
        try:
            plan = plans.create_plan(
                actor=Actor.person(request.user),
                source=source,
                target=target,
                operations=_operations_from(request),
                notes=request.POST.get("notes", "")[:5000],
            )
        except Refusal as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, "Deployment plan saved.")
            return redirect("deployments:plan", key=plan.key)
    return render(
        request,
        "deployments/plan_form.html",
        {"source": source, "target": target, "candidates": candidates(source, target), "plan": None},
    )


def _act(request: HttpRequest, key, action, success: str, *, to_list: bool = False) -> HttpResponse:
    plan = plan_for(request, key, AccessLevel.DEPLOY)
    try:
        result = action(actor=Actor.person(request.user), plan=plan)
    except Refusal as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, success)
        if isinstance(result, DeploymentPlan) and result.pk != plan.pk:
            return redirect("deployments:plan", key=result.key)
        if to_list:
            return redirect("deployments:plans")
    return redirect("deployments:plan", key=plan.key)


@login_required
@require_POST
def plan_save(request: HttpRequest, key) -> HttpResponse:
    plan = plan_for(request, key, AccessLevel.DEPLOY)
    try:
        plans.update_plan(
            actor=Actor.person(request.user),
            plan=plan,
            operations=_operations_from(request),
            notes=request.POST.get("notes", "")[:5000],
        )
    except Refusal as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Deployment plan saved." if "validate" not in request.POST else "Validated.")
    return redirect("deployments:plan", key=plan.key)


@login_required
@require_POST
@recent_authentication_on_production("Deploy Now", applies=lambda plan: not plan.target.two_stage_deployments)
def plan_start(request: HttpRequest, key) -> HttpResponse:
    plan = plan_for(request, key, AccessLevel.DEPLOY)
    two = plan.target.two_stage_deployments
    reason = request.POST.get("reason", "")[:500]

    def act(*, actor, plan):
        return plans.start_plan(actor=actor, plan=plan, override_reason=reason)

    if plan.target.queue_plans:
        message = f"Started: {'preparing' if two else 'deploying'} now, or queued until {plan.target.name} can take it."
    else:
        message = "Preparing the deployment." if two else "Deploying now."
    return _act(request, key, act, message)


@login_required
@require_POST
@recent_authentication_on_production("Continue Deployment")
def plan_continue(request: HttpRequest, key) -> HttpResponse:
    reason = request.POST.get("reason", "")[:500]

    def act(*, actor, plan):
        return plans.continue_plan(actor=actor, plan=plan, override_reason=reason)

    return _act(request, key, act, "Continuing the deployment.")


@login_required
@require_POST
@recent_authentication_on_production("Continue at the window's start")
def plan_schedule_continue(request: HttpRequest, key) -> HttpResponse:
    """Continue at the window's start, or at the time given (server time zone)."""
    raw = (request.POST.get("at") or "").strip()
    at = None
    if raw:
        from django.utils.dateparse import parse_datetime

        try:
            parsed = parse_datetime(raw)
        except ValueError:  # well-formed but impossible, such as February 30th
            parsed = None
        if parsed is None:
            messages.error(request, f"{raw!r} is not a date and time.")
            return redirect("deployments:plan", key=key)
        at = timezone.make_aware(parsed) if timezone.is_naive(parsed) else parsed

    def act(*, actor, plan):
        return plans.schedule_continue(actor=actor, plan=plan, at=at)

    return _act(request, key, act, "Continue scheduled.")


@login_required
@require_POST
def plan_cancel_scheduled_continue(request: HttpRequest, key) -> HttpResponse:
    return _act(request, key, plans.cancel_scheduled_continue, "Scheduled Continue cancelled.")


@login_required
@require_POST
def plan_continue_later(request: HttpRequest, key) -> HttpResponse:
    plan = plan_for(request, key, AccessLevel.DEPLOY)
    messages.success(request, f"The plan stays prepared on {plan.target.name}: continue it from the plans list.")
    return redirect(reverse("deployments:plans") + "?status=prepared")


@login_required
@require_POST
@recent_authentication_on_production("Abort")
def plan_abort(request: HttpRequest, key) -> HttpResponse:
    return _act(request, key, plans.abort_plan, "Abort requested.")


@login_required
@require_POST
@recent_authentication_on_production("Roll Back")
def plan_rollback(request: HttpRequest, key) -> HttpResponse:
    """Roll Back the plan, or only the application named in the form (from the running versions)."""
    application = (request.POST.get("application") or "").strip()

    def act(*, actor, plan):
        return plans.rollback_plan(actor=actor, plan=plan, applications=[application] if application else None)

    return _act(request, key, act, f"Rolling back {application or 'the plan'}.")


@login_required
@require_POST
def settings_plan(request: HttpRequest, env_key, app_key) -> HttpResponse:
    """Apply an application's settings in an environment with a plan of its own."""
    environment = get_object_or_404(Environment, key=env_key)
    application = get_object_or_404(Application, key=app_key)
    try:
        plan = plans.create_settings_plan(
            actor=Actor.person(request.user), environment=environment, application=application
        )
    except Refusal as exc:
        messages.error(request, exc.message)
        return redirect("catalog:environment_settings", env_key=environment.key)
    messages.success(request, f"A plan applies the settings of {application.name}: Validate, then deploy it.")
    return redirect("deployments:plan", key=plan.key)


@login_required
@require_POST
def plan_delete(request: HttpRequest, key) -> HttpResponse:
    plan = plan_for(request, key, AccessLevel.DEPLOY)
    try:
        plans.delete_plan(actor=Actor.person(request.user), plan=plan)
    except Refusal as exc:
        messages.error(request, str(exc))
        return redirect("deployments:plan", key=plan.key)
    messages.success(request, "Deployment plan deleted.")
    return redirect("deployments:plans")


@login_required
@require_POST
def plan_retry(request: HttpRequest, key) -> HttpResponse:
    return _act(request, key, plans.retry_plan, "The plan is saved again: start it when ready.")


@login_required
@require_POST
def plan_reuse(request: HttpRequest, key) -> HttpResponse:
    return _act(request, key, plans.reuse_plan, "A new plan with the same applications was saved.")


@login_required
@require_POST
def plan_prepare_again(request: HttpRequest, key) -> HttpResponse:
    return _act(request, key, plans.prepare_again, "Preparing the deployment again.")


@login_required
@require_POST
def plan_add_suggestion(request: HttpRequest, key) -> HttpResponse:
    plan = plan_for(request, key, AccessLevel.DEPLOY)
    app = get_object_or_404(Application, key=request.POST.get("application"))
    try:
        plans.add_suggestion(actor=Actor.person(request.user), plan=plan, application=app)
    except Refusal as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{app.name} added to the plan.")
    return redirect("deployments:plan", key=plan.key)


@login_required
@require_POST
def plan_approve(request: HttpRequest, key) -> HttpResponse:
    """Approve or reject (``decision``) the plan as prepared, with an optional comment."""
    plan = plan_for(request, key)
    reject = request.POST.get("decision") == "reject"
    try:
        (approvals.reject if reject else approvals.approve)(
            actor=Actor.person(request.user), plan=plan, comment=request.POST.get("comment", "")[:2000]
        )
    except Refusal as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, "Rejected: Continue is blocked until the plan is prepared again." if reject else "Approved."
        )
    return redirect("deployments:plan", key=plan.key)


@login_required
@require_POST
def plan_withdraw_approval(request: HttpRequest, key) -> HttpResponse:
    plan = plan_for(request, key)
    try:
        approvals.withdraw(actor=Actor.person(request.user), plan=plan)
    except Refusal as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Your approval is withdrawn.")
    return redirect("deployments:plan", key=plan.key)
