from django.urls import path

from deployments.mobile import views as mobile_views

app_name = "mobile"

urlpatterns = [
    path("", mobile_views.mobile_apps, name="apps"),
    path("<uuid:app_key>/configure/", mobile_views.configure_mobile_app, name="configure"),
    path("packages/<int:package_id>/download/", mobile_views.download_package, name="download"),
]
