from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path

from core import reauth
from deployments.artifacts.views import artifact_download
from deployments.plans import views as deployment_views
from deployments.plans.agent_views import agent_settings
from deployments.status import metrics
from environments import audit_views
from lifetime import health

handler400 = "lifetime.errors.bad_request"
handler403 = "lifetime.errors.permission_denied"

urlpatterns = [
    path("", deployment_views.applications_overview, name="home"),
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="registration/login.html", redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("reauthenticate/", reauth.reauthenticate, name="reauthenticate"),
    path("oidc/", include("mozilla_django_oidc.urls")),
    path("audit/", audit_views.audit_trail, name="audit"),
    re_path(r"^audit/export\.(?P<fmt>csv|json)$", audit_views.audit_export, name="audit_export"),
    path("service-accounts/", include("lifetime.service_account_urls")),
    path("healthz", health.ready, name="healthz"),
    path("health/live", health.live, name="health_live"),
    path("health/ready", health.ready, name="health_ready"),
    path("metrics", metrics.metrics, name="metrics"),
    path("environments/", include("environments.urls")),
    path("environments/<uuid:key>/mobile/", include("deployments.mobile.urls")),
    path("environments/<uuid:key>/notifications/", include("deployments.notifications.urls")),
    path("artifacts/<str:sha256>", artifact_download, name="artifact_download"),
    path(
        "agents/settings/<uuid:frontend_key>/<uuid:plan_key>/<str:application>",
        agent_settings,
        name="agent_settings",
    ),
    path("lifetimeapi/rest/v2/", include("deployments.api.urls")),
    path("applications/", include("deployments.catalog.urls")),
    path("", include("deployments.urls")),
    path("admin/", admin.site.urls),
]
