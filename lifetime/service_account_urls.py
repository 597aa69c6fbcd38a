from django.urls import path

from lifetime import views

app_name = "service_accounts"

urlpatterns = [
    path("", views.service_account_list, name="list"),
    path("new/", views.service_account_create, name="create"),
    path("<uuid:key>/revoke/", views.service_account_revoke, name="revoke"),
]
