from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from lifetime import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(template_name="registration/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("audit/", views.audit_trail, name="audit"),
    path("healthz", views.healthz, name="healthz"),
    path("environments/", include("environments.urls")),
    path("applications/", include("deployments.catalog_urls")),
    path("admin/", admin.site.urls),
]
