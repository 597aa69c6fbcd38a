from django.apps import AppConfig
from django.conf import settings


class EnvironmentsConfig(AppConfig):
    name = "environments"
    verbose_name = "Infrastructure"

    def ready(self) -> None:
        # Single sign-on (core.signin) announces the provider's groups; rights are ours.
        from core.signin import sso_signed_in
        from environments import sso_roles

        sso_signed_in.connect(sso_roles.on_sso_signed_in, dispatch_uid="environments.sso_roles")
        # A typo in the mapping fails the start, not the first sign-on of the day.
        sso_roles.parse(settings.OIDC_GROUP_ROLES)
