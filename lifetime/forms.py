from __future__ import annotations

from django import forms

from environments.models import AccessLevel, Environment

# A pipeline deploys or reads; managing an environment stays with people.
SERVICE_ACCOUNT_LEVELS = [
    (AccessLevel.NONE, "None"),
    (AccessLevel.VIEW, "View"),
    (AccessLevel.DEPLOY, "Deploy"),
]


class ServiceAccountForm(forms.Form):
    name = forms.CharField(max_length=60, help_text="e.g. azure-pipeline. Letters, digits, '.', '-' and '_'.")
    description = forms.CharField(max_length=200, required=False, help_text="Which pipeline uses it, who owns it.")

    def __init__(self, *args, environments: list[Environment], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.environments = environments
        for env in environments:
            self.fields[self.field_name(env)] = forms.TypedChoiceField(
                label=f"Right on {env.name}",
                choices=SERVICE_ACCOUNT_LEVELS,
                coerce=int,
                initial=AccessLevel.NONE,
            )

    @staticmethod
    def field_name(env: Environment) -> str:
        return f"level_{env.pk}"

    def rights(self) -> dict[Environment, int]:
        return {env: self.cleaned_data[self.field_name(env)] for env in self.environments}

    def environment_fields(self):
        return [self[self.field_name(env)] for env in self.environments]
