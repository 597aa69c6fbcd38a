from django.urls import path

from deployments.catalog import views as catalog_views

app_name = "catalog"

urlpatterns = [
    path("", catalog_views.application_list, name="list"),
    path("upload/", catalog_views.upload, name="upload"),
    path("<uuid:key>/", catalog_views.application_detail, name="application"),
    path("versions/<uuid:key>/", catalog_views.version_detail, name="version"),
    path("settings/<uuid:env_key>/", catalog_views.environment_settings, name="environment_settings"),
]
