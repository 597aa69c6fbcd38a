from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from environments.access import is_infra_admin
from lifetime.models import AuditEvent


@login_required
def audit_trail(request: HttpRequest) -> HttpResponse:
    if not is_infra_admin(request.user):
        raise PermissionDenied("Only infra admins see the whole audit trail.")
    page = Paginator(AuditEvent.objects.all(), 50).get_page(request.GET.get("page"))
    return render(request, "audit.html", {"page": page})


def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("select 1")
    return JsonResponse({"status": "ok"})
