"""The console's pages of deployments (namespace ``deployments``): plans and their buttons, their
status pages, the board. The catalog, mobile and notification pages have their own url modules."""

from django.urls import path

from deployments.plans import views as plan_views
from deployments.status import views as status_views

app_name = "deployments"

urlpatterns = [
    path("plans/", plan_views.plan_list, name="plans"),
    path("plans/new/", plan_views.plan_create, name="plan_create"),
    path("plans/<uuid:key>/", status_views.plan_detail, name="plan"),
    path("plans/<uuid:key>/live/", status_views.plan_live, name="plan_live"),
    path("plans/<uuid:key>/changes/", status_views.plan_changes, name="plan_changes"),
    path("plans/<uuid:key>/log.txt", status_views.plan_log, name="plan_log"),
    path("plans/<uuid:key>/log/", status_views.plan_log_window, name="plan_log_window"),
    path("plans/<uuid:key>/sql/<uuid:app_key>.sql", status_views.plan_sql, name="plan_sql"),
    path("board/", status_views.environment_board, name="board"),
    path("board/live/", status_views.environment_board_live, name="board_live"),
    path("environments/<uuid:key>/running/", status_views.environment_running, name="environment_running"),
    path("frontends/<uuid:key>/put-back/", status_views.frontend_put_back, name="frontend_put_back"),
    path("plans/<uuid:key>/save/", plan_views.plan_save, name="plan_save"),
    path("plans/<uuid:key>/start/", plan_views.plan_start, name="plan_start"),
    path("plans/<uuid:key>/continue/", plan_views.plan_continue, name="plan_continue"),
    path("plans/<uuid:key>/continue-later/", plan_views.plan_continue_later, name="plan_continue_later"),
    path("plans/<uuid:key>/schedule-continue/", plan_views.plan_schedule_continue, name="plan_schedule_continue"),
    path(
        "plans/<uuid:key>/cancel-scheduled-continue/",
        plan_views.plan_cancel_scheduled_continue,
        name="plan_cancel_scheduled_continue",
    ),
    path("plans/<uuid:key>/abort/", plan_views.plan_abort, name="plan_abort"),
    path("plans/<uuid:key>/rollback/", plan_views.plan_rollback, name="plan_rollback"),
    path("environments/<uuid:env_key>/settings-plan/<uuid:app_key>/", plan_views.settings_plan, name="settings_plan"),
    path("plans/<uuid:key>/delete/", plan_views.plan_delete, name="plan_delete"),
    path("plans/<uuid:key>/retry/", plan_views.plan_retry, name="plan_retry"),
    path("plans/<uuid:key>/reuse/", plan_views.plan_reuse, name="plan_reuse"),
    path("plans/<uuid:key>/prepare-again/", plan_views.plan_prepare_again, name="plan_prepare_again"),
    path("plans/<uuid:key>/approve/", plan_views.plan_approve, name="plan_approve"),
    path("plans/<uuid:key>/withdraw-approval/", plan_views.plan_withdraw_approval, name="plan_withdraw_approval"),
    path("plans/<uuid:key>/add-suggestion/", plan_views.plan_add_suggestion, name="plan_add_suggestion"),
]
