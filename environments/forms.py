from __future__ import annotations

import zoneinfo

from django import forms
from django.db import models

from environments.models import AccessLevel, Environment, FrontEnd
from environments.services import ENVIRONMENT_FIELDS
from environments.windows import WEEKDAY_NAMES, WEEKDAYS


class EnvironmentForm(forms.ModelForm):
    window_days = forms.TypedMultipleChoiceField(
        choices=list(enumerate(WEEKDAYS)),
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Window days",
    )
    approvals_required = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=10,
        label="Approvals needed before Continue",
        help_text=Environment._meta.get_field("approvals_required").help_text,
    )
    approver_level = forms.TypedChoiceField(
        required=False,
        coerce=int,
        choices=Environment._meta.get_field("approver_level").choices,
        label="Who may approve",
        help_text=Environment._meta.get_field("approver_level").help_text,
    )
    window_minutes = forms.IntegerField(required=False, min_value=1, max_value=24 * 60, label="Window length (minutes)")
    # Optional in the form (1 when left empty), so that a form saved before the field existed still saves.
    concurrent_plans = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=5,
        initial=1,
        label="Plans at once",
        help_text=Environment._meta.get_field("concurrent_plans").help_text,
    )
    app_db_dsn = forms.CharField(
        required=False,
        label="Application database connection",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="postgres://user:password@host:5432/database — write-only: leave empty to keep the stored one.",
    )
    clear_app_db = forms.BooleanField(required=False, label="Remove the stored connection")
    confirm_privileged_role = forms.BooleanField(
        required=False,
        label="Accept a role with more rights than a deployment needs",
        help_text="Infra admins only, and audited: a superuser, or a role that may create roles, run programs "
        "or read and write files on the database server.",
    )

    class Meta:
        model = Environment
        fields = list(ENVIRONMENT_FIELDS)
        widgets = {"window_start": forms.TimeInput(attrs={"type": "time"}, format="%H:%M")}
        labels = {
            "prepared_plan_ttl_hours": "A prepared plan may wait (hours)",
            "sql_lock_timeout_ms": "SQL lock timeout (ms)",
            "sql_statement_timeout_ms": "SQL statement timeout (ms)",
        }

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Enter a name.")
        return name

    def clean_window_timezone(self) -> str:
        tz = self.cleaned_data["window_timezone"].strip() or "UTC"
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise forms.ValidationError(f"Unknown time zone {tz!r} (use a name like Europe/Lisbon).") from None
        return tz

    def clean_approvals_required(self) -> int:
        # Left out (an older form, a script): no approval, as before.
        return self.cleaned_data.get("approvals_required") or 0

    def clean_approver_level(self) -> int:
        return self.cleaned_data.get("approver_level") or AccessLevel.DEPLOY

    def clean_prepared_plan_ttl_hours(self) -> int:
        hours = self.cleaned_data["prepared_plan_ttl_hours"]
        if not 1 <= hours <= 24 * 30:
            raise forms.ValidationError("Between 1 hour and 30 days.")
        return hours

    def clean_concurrent_plans(self) -> int:
        return self.cleaned_data.get("concurrent_plans") or 1

    def validate_unique(self) -> None:
        # Uniqueness is checked by the service, with a clearer message and under a lock.
        pass

    def environment_data(self) -> dict:
        return {name: self.cleaned_data[name] for name in self.Meta.fields if name in self.cleaned_data}

    def app_db_change(self) -> str | None:
        if self.cleaned_data.get("clear_app_db"):
            return ""
        return self.cleaned_data.get("app_db_dsn") or None


def http_urls(field, **kwargs):
    """Model URL fields as form fields that read a bare host as http:// (front-ends on a LAN)."""
    if isinstance(field, models.URLField):
        kwargs.setdefault("assume_scheme", "http")
    return field.formfield(**kwargs)


class FrontEndForm(forms.ModelForm):
    class Meta:
        formfield_callback = http_urls
        model = FrontEnd
        fields = ["name", "queue", "releases_root", "base_url", "health_url", "enabled"]
        help_texts = {"queue": "Leave empty for frontend.<environment>.<name>."}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["queue"].required = False

    def validate_unique(self) -> None:
        pass


class WindowForm(forms.Form):
    days = forms.TypedMultipleChoiceField(
        choices=list(enumerate(WEEKDAYS)), coerce=int, widget=forms.CheckboxSelectMultiple, label="Days"
    )
    start = forms.TimeField(widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"), label="Start")
    minutes = forms.IntegerField(min_value=1, max_value=24 * 60, label="Length (minutes)")
    timezone = forms.CharField(max_length=64, initial="UTC", label="Time zone")


FREEZE_WEEKS = [(1, "first"), (2, "second"), (3, "third"), (4, "fourth"), (5, "fifth"), (-1, "last")]


class FreezeForm(forms.Form):
    reason = forms.CharField(max_length=300, label="Reason")
    starts_at = forms.DateTimeField(
        required=False, label="From", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    ends_at = forms.DateTimeField(
        required=False, label="Until", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    week = forms.TypedChoiceField(
        required=False, coerce=int, empty_value=None, choices=[("", "—"), *FREEZE_WEEKS], label="Or every month: the"
    )
    weekday = forms.TypedChoiceField(
        required=False, coerce=int, empty_value=None, choices=[("", "—"), *enumerate(WEEKDAY_NAMES)], label="day"
    )
    timezone = forms.CharField(max_length=64, initial="UTC", label="Time zone")

    def clean(self) -> dict:
        data = super().clean()
        tz_name = (data.get("timezone") or "UTC").strip()
        try:
            tz = zoneinfo.ZoneInfo(tz_name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise forms.ValidationError(f"Unknown time zone {tz_name!r}.") from None
        # The range is typed in the freeze's own time zone.
        for name in ("starts_at", "ends_at"):
            value = data.get(name)
            if value is not None:
                data[name] = value.replace(tzinfo=None).replace(tzinfo=tz)
        return data


class DeploymentZoneForm(forms.Form):
    name = forms.CharField(max_length=80)
    frontends = forms.ModelMultipleChoiceField(
        queryset=FrontEnd.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Front-ends",
        help_text="An application deployed to this zone is uploaded to and switched on these front-ends only.",
    )

    def __init__(self, *args, environment: Environment, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["frontends"].queryset = environment.frontends.order_by("name")
