from django.urls import path

from deployments import status_views, views

app_name = "deployments"

urlpatterns = [
    path("plans/", views.plan_list, name="plans"),
    path("environments/<uuid:key>/running/", views.environment_running, name="environment_running"),
    path("plans/new/", views.plan_create, name="plan_create"),
    path("plans/<uuid:key>/", views.plan_detail, name="plan"),
    path("plans/<uuid:key>/live/", views.plan_live, name="plan_live"),
    path("plans/<uuid:key>/log.txt", status_views.plan_log, name="plan_log"),
    path("plans/<uuid:key>/log/", status_views.plan_log_window, name="plan_log_window"),
    path("plans/<uuid:key>/sql/<uuid:app_key>.sql", status_views.plan_sql, name="plan_sql"),
    path("board/", status_views.environment_board, name="board"),
    path("board/live/", status_views.environment_board_live, name="board_live"),
    path("plans/<uuid:key>/save/", views.plan_save, name="plan_save"),
    path("plans/<uuid:key>/start/", views.plan_start, name="plan_start"),
    path("plans/<uuid:key>/continue/", views.plan_continue, name="plan_continue"),
    path("plans/<uuid:key>/continue-later/", views.plan_continue_later, name="plan_continue_later"),
    path("plans/<uuid:key>/schedule-continue/", views.plan_schedule_continue, name="plan_schedule_continue"),
    path(
        "plans/<uuid:key>/cancel-scheduled-continue/",
        views.plan_cancel_scheduled_continue,
        name="plan_cancel_scheduled_continue",
    ),
    path("plans/<uuid:key>/abort/", views.plan_abort, name="plan_abort"),
    path("plans/<uuid:key>/delete/", views.plan_delete, name="plan_delete"),
    path("plans/<uuid:key>/retry/", views.plan_retry, name="plan_retry"),
    path("plans/<uuid:key>/reuse/", views.plan_reuse, name="plan_reuse"),
    path("plans/<uuid:key>/prepare-again/", views.plan_prepare_again, name="plan_prepare_again"),
    path("plans/<uuid:key>/add-suggestion/", views.plan_add_suggestion, name="plan_add_suggestion"),
]
