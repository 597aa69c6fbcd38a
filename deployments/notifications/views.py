"""The notifications page of an environment (manage right): who hears about which plan events,
and how the recent deliveries went."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from core.actors import Actor
from deployments.models import NotificationDelivery, NotificationEvent, NotificationKind, NotificationRule
from deployments.notifications import services as notifications
from environments import access
from environments.models import AccessLevel, Environment

RECENT_DELIVERIES = 50


class NotificationRuleForm(forms.Form):
    kind = forms.ChoiceField(choices=NotificationKind.choices, initial=NotificationKind.EMAIL)
    target = forms.CharField(
        max_length=500, help_text="Email addresses separated by commas, or the webhook's http(s) URL."
    )
    events = forms.MultipleChoiceField(
        choices=NotificationEvent.choices, widget=forms.CheckboxSelectMultiple, initial=list(NotificationEvent.values)
    )
    secret = forms.CharField(
        required=False,
        max_length=200,
        widget=forms.PasswordInput(render_value=False),
        help_text="Webhooks only: the key of the X-Lifetime-Signature HMAC. Left blank, one is generated and shown once.",
    )


def _environment_for(request: HttpRequest, key) -> Environment:
    environment = get_object_or_404(Environment, key=key)
    if not access.can(request.user, environment, AccessLevel.VIEW):
        raise PermissionDenied("You have no access to this environment.")
    access.require(request.user, environment, AccessLevel.MANAGE)
    return environment


def _rule_for(request: HttpRequest, key, rule_key) -> NotificationRule:
    environment = _environment_for(request, key)
    return get_object_or_404(
        NotificationRule.objects.select_related("environment"), key=rule_key, environment=environment
    )


@login_required
def notification_rules(request: HttpRequest, key) -> HttpResponse:
    environment = _environment_for(request, key)
    form = NotificationRuleForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            _, generated = notifications.save_rule(
                actor=Actor.person(request.user),
                environment=environment,
                kind=form.cleaned_data["kind"],
                target=form.cleaned_data["target"],
                events=form.cleaned_data["events"],
                secret=form.cleaned_data["secret"],
            )
        except notifications.RuleRefused as exc:
            form.add_error(None, str(exc))
        else:
            if generated:
                messages.warning(
                    request,
                    f"Webhook added. Its signing secret, shown only now: {generated} — "
                    "check X-Lifetime-Signature (sha256=HMAC of the body) with it.",
                )
            else:
                messages.success(request, "Notification added.")
            return redirect("notifications:rules", key=environment.key)
    rules = list(environment.notification_rules.all())
    deliveries = list(
        NotificationDelivery.objects.filter(rule__environment=environment)
        .select_related("rule", "plan", "plan__source")
        .order_by("-created_at", "-id")[:RECENT_DELIVERIES]
    )
    return render(
        request,
        "deployments/notifications.html",
        {"environment": environment, "form": form, "rules": rules, "deliveries": deliveries},
    )


@login_required
@require_POST
def rule_set_enabled(request: HttpRequest, key, rule_key) -> HttpResponse:
    rule = _rule_for(request, key, rule_key)
    enabled = request.POST.get("enabled") == "true"
    notifications.set_rule_enabled(actor=Actor.person(request.user), rule=rule, enabled=enabled)
    messages.success(request, f"Notification to {rule.target} {'enabled' if enabled else 'disabled'}.")
    return redirect("notifications:rules", key=rule.environment.key)


@login_required
@require_POST
def rule_delete(request: HttpRequest, key, rule_key) -> HttpResponse:
    rule = _rule_for(request, key, rule_key)
    notifications.delete_rule(actor=Actor.person(request.user), rule=rule)
    messages.success(request, f"Notification to {rule.target} removed.")
    return redirect("notifications:rules", key=rule.environment.key)


@login_required
@require_POST
def rule_test(request: HttpRequest, key, rule_key) -> HttpResponse:
    rule = _rule_for(request, key, rule_key)
    notifications.send_test(actor=Actor.person(request.user), rule=rule)
    messages.success(request, f"Test notification to {rule.target} queued: see its delivery below.")
    return redirect("notifications:rules", key=rule.environment.key)
