"""Every path answers with and without a trailing slash, without a redirect (a redirect breaks POST)."""

from django.urls import re_path

from deployments.api import downloads, openapi, views

app_name = "lifetimeapi"

KEY = r"[^/]+"

urlpatterns = [
    re_path(r"^openapi\.json$", openapi.document, name="openapi"),
    re_path(r"^environments/?$", views.environment_list, name="environments"),
    re_path(rf"^environments/(?P<env_key>{KEY})/?$", views.environment_detail, name="environment"),
    re_path(
        rf"^environments/(?P<env_key>{KEY})/applications/?$",
        views.environment_applications,
        name="environment_applications",
    ),
    re_path(
        rf"^environments/(?P<env_key>{KEY})/deployment/?$", views.environment_deployment, name="environment_deployment"
    ),
    re_path(
        rf"^environments/(?P<env_key>{KEY})/applications/(?P<app_key>{KEY})/?$",
        views.environment_application,
        name="environment_application",
    ),
    re_path(
        rf"^environments/(?P<env_key>{KEY})/applications/(?P<app_key>{KEY})/versions/?$",
        views.tag_version,
        name="tag_version",
    ),
    re_path(rf"^environments/(?P<env_key>{KEY})/deploymentzones/?$", views.deployment_zones, name="deployment_zones"),
    # Extensions of the console (docs/api.md): front-ends, their drift, Put back.
    re_path(rf"^environments/(?P<env_key>{KEY})/frontends/?$", views.frontends, name="frontends"),
    re_path(
        rf"^environments/(?P<env_key>{KEY})/frontends/(?P<frontend_key>{KEY})/putback/?$",
        views.frontend_put_back,
        name="frontend_put_back",
    ),
    re_path(r"^applications/?$", views.application_list, name="applications"),
    re_path(rf"^applications/(?P<app_key>{KEY})/?$", views.application_detail, name="application"),
    re_path(rf"^applications/(?P<app_key>{KEY})/versions/?$", views.application_versions, name="application_versions"),
    re_path(
        rf"^applications/(?P<app_key>{KEY})/versions/(?P<version_key>{KEY})/?$",
        views.application_version,
        name="application_version",
    ),
    re_path(
        rf"^applications/(?P<app_key>{KEY})/versions/(?P<version_key>{KEY})/content/?$",
        views.application_version_content,
        name="application_version_content",
    ),
    re_path(r"^downloads/(?P<token>[^/]+)/?$", downloads.download, name="download"),
    re_path(r"^deployments/?$", views.deployments, name="deployments"),
    re_path(rf"^deployments/(?P<plan_key>{KEY})/?$", views.deployment, name="deployment"),
    re_path(rf"^deployments/(?P<plan_key>{KEY})/start/?$", views.deployment_start, name="deployment_start"),
    re_path(rf"^deployments/(?P<plan_key>{KEY})/continue/?$", views.deployment_continue, name="deployment_continue"),
    re_path(rf"^deployments/(?P<plan_key>{KEY})/approve/?$", views.deployment_approve, name="deployment_approve"),
    re_path(rf"^deployments/(?P<plan_key>{KEY})/reject/?$", views.deployment_reject, name="deployment_reject"),
    re_path(rf"^deployments/(?P<plan_key>{KEY})/abort/?$", views.deployment_abort, name="deployment_abort"),
    re_path(rf"^deployments/(?P<plan_key>{KEY})/rollback/?$", views.deployment_rollback, name="deployment_rollback"),
    re_path(rf"^deployments/(?P<plan_key>{KEY})/status/?$", views.deployment_status, name="deployment_status"),
]
