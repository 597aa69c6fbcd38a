from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from deployments.artifacts.views import artifact_download
from deployments.plans import views as deployment_views
from lifetime import views

urlpatterns = [
    path("", deployment_views.applications_overview, name="home"),
    path("login/", auth_views.LoginView.as_view(template_name="registration/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("audit/", views.audit_trail, name="audit"),
    path("service-accounts/", include("lifetime.service_account_urls")),
    path("healthz", views.healthz, name="healthz"),
    path("environments/", include("environments.urls")),
    path("environments/<uuid:key>/mobile/", include("deployments.mobile.urls")),
    path("environments/<uuid:key>/notifications/", include("deployments.notifications.urls")),
    path("artifacts/<str:sha256>", artifact_download, name="artifact_download"),
    path("lifetimeapi/rest/v2/", include("deployments.api.urls")),
    path("applications/", include("deployments.catalog.urls")),
    path("", include("deployments.urls")),
    path("admin/", admin.site.urls),
]
