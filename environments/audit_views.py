"""The audit trail for infra admins: filtered by date, environment and actor, and exported as CSV
or JSON with the same filters."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from core import audit
from core.actors import Actor
from core.models import AuditEvent
from environments.access import is_infra_admin
from environments.models import Environment

EXPORT_FIELDS = [
    "at",
    "actor",
    "action",
    "object_type",
    "object_key",
    "object_label",
    "environment_key",
    "environment",
    "changes",
    "message",
]


class AuditFilterForm(forms.Form):
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To (inclusive)", widget=forms.DateInput(attrs={"type": "date"}))
    environment = forms.ModelChoiceField(
        queryset=Environment.objects.order_by("order"), required=False, to_field_name="key", empty_label="Any"
    )
    actor = forms.CharField(required=False, max_length=150, help_text="User or service account name, exactly.")
    action = forms.CharField(required=False, max_length=80, help_text="e.g. signin. or plan.continued")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("“From” is after “To”.")
        return data

    def filter(self, events: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        data = self.cleaned_data
        tz = timezone.get_current_timezone()
        if data.get("since"):
            events = events.filter(at__gte=dt.datetime.combine(data["since"], dt.time.min, tzinfo=tz))
        if data.get("until"):
            events = events.filter(
                at__lt=dt.datetime.combine(data["until"] + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
            )
        if data.get("environment"):
            events = events.filter(environment_key=data["environment"].key)
        if data.get("actor"):
            events = events.filter(actor_name=data["actor"].strip())
        if data.get("action"):
            events = events.filter(action__startswith=data["action"].strip())
        return events


def _require_infra_admin(request: HttpRequest) -> None:
    if not is_infra_admin(request.user):
        raise PermissionDenied("Only infra admins see the whole audit trail.")


def _filtered(request: HttpRequest) -> tuple[AuditFilterForm, QuerySet[AuditEvent]]:
    form = AuditFilterForm(request.GET or None)
    events = AuditEvent.objects.all()
    if form.is_bound and form.is_valid():
        events = form.filter(events)
    elif form.is_bound:
        events = events.none()
    return form, events


@login_required
def audit_trail(request: HttpRequest) -> HttpResponse:
    _require_infra_admin(request)
    form, events = _filtered(request)
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "audit.html", {"page": page, "form": form, "query": query.urlencode()})


def _rows(events: QuerySet[AuditEvent]) -> Iterator[dict[str, Any]]:
    names = dict(Environment.objects.values_list("key", "name"))
    for event in events.iterator(chunk_size=2000):
        yield {
            "at": event.at.isoformat(),
            "actor": event.actor_name,
            "action": event.action,
            "object_type": event.object_type,
            "object_key": event.object_key,
            "object_label": event.object_label,
            "environment_key": str(event.environment_key) if event.environment_key else "",
            "environment": names.get(event.environment_key, "") if event.environment_key else "",
            "changes": event.changes,
            "message": event.message,
        }


def _spreadsheet_safe(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    # A cell starting with = + - @ is a formula to a spreadsheet: an audit row must stay text.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_lines(events: QuerySet[AuditEvent]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_FIELDS)
    for row in _rows(events):
        yield writer.writerow([_spreadsheet_safe(row[name]) for name in EXPORT_FIELDS])


def _json_chunks(events: QuerySet[AuditEvent]) -> Iterator[str]:
    yield "["
    first = True
    for row in _rows(events):
        yield ("" if first else ",\n") + json.dumps(row, ensure_ascii=False)
        first = False
    yield "]\n"


@login_required
def audit_export(request: HttpRequest, fmt: str) -> HttpResponse:
    _require_infra_admin(request)
    form, events = _filtered(request)
    if form.is_bound and not form.is_valid():
        errors = "; ".join(str(e) for errs in form.errors.values() for e in errs)
        return HttpResponse(f"The filters are not valid: {errors}\n", status=400, content_type="text/plain")
    filters = {
        k: str(v.key if isinstance(v, Environment) else v) for k, v in getattr(form, "cleaned_data", {}).items() if v
    }
    # Exporting the trail is itself an action worth knowing about.
    audit.record(
        actor=Actor.person(request.user),
        action="audit.exported",
        object_type="audit",
        message=f"Exported the audit trail as {fmt.upper()} with filters {filters or 'none'}.",
    )
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    if fmt == "csv":
        response = StreamingHttpResponse(_csv_lines(events), content_type="text/csv; charset=utf-8")
    else:
        response = StreamingHttpResponse(_json_chunks(events), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="lifetime-audit-{stamp}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response
