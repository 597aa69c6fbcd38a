from django.urls import path

from environments import views

app_name = "environments"

urlpatterns = [
    path("", views.environment_list, name="list"),
    path("new/", views.environment_create, name="create"),
    path("<uuid:key>/", views.environment_detail, name="detail"),
    path("<uuid:key>/edit/", views.environment_edit, name="edit"),
    path("<uuid:key>/windows/", views.window_add, name="window_add"),
    path("<uuid:key>/windows/<int:pk>/delete/", views.window_delete, name="window_delete"),
    path("<uuid:key>/freezes/", views.freeze_add, name="freeze_add"),
    path("<uuid:key>/freezes/<uuid:freeze_key>/delete/", views.freeze_delete, name="freeze_delete"),
    path("<uuid:key>/test-connection/", views.test_connection, name="test_connection"),
    path("<uuid:key>/frontends/new/", views.frontend_create, name="frontend_create"),
    path("frontends/<uuid:key>/edit/", views.frontend_edit, name="frontend_edit"),
    path("<uuid:key>/zones/new/", views.zone_form, name="zone_create"),
    path("<uuid:key>/zones/<uuid:zone_key>/edit/", views.zone_form, name="zone_edit"),
    path("<uuid:key>/zones/<uuid:zone_key>/delete/", views.zone_delete, name="zone_delete"),
    path("frontends/<uuid:key>/enabled/", views.frontend_set_enabled, name="frontend_set_enabled"),
    path("frontends/<uuid:key>/agent-key/", views.frontend_new_key, name="frontend_new_key"),
]
