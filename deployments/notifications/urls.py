from django.urls import path

from deployments.notifications import views as notification_views

app_name = "notifications"

urlpatterns = [
    path("", notification_views.notification_rules, name="rules"),
    path("<uuid:rule_key>/enabled/", notification_views.rule_set_enabled, name="rule_enabled"),
    path("<uuid:rule_key>/delete/", notification_views.rule_delete, name="rule_delete"),
    path("<uuid:rule_key>/test/", notification_views.rule_test, name="rule_test"),
]
