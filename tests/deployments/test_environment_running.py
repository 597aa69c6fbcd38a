from __future__ import annotations

from django.urls import reverse
from django.utils import timezone

from deployments.models import RunningVersion
from tests.conftest import make_user


def test_the_environment_page_shows_what_runs_there(client, landscape, ops_user, versions):
    v = versions("hr_core", "1.0.0")
    RunningVersion.objects.create(
        environment=landscape["Test"], application=v.application, version=v, since=timezone.now()
    )
    client.force_login(ops_user)
    page = client.get(reverse("environments:detail", args=[landscape["Test"].key])).content.decode()
    assert reverse("deployments:environment_running", args=[landscape["Test"].key]) in page
    fragment = client.get(reverse("deployments:environment_running", args=[landscape["Test"].key])).content.decode()
    assert "hr_core" in fragment and "1.0.0" in fragment
    empty = client.get(reverse("deployments:environment_running", args=[landscape["Production"].key])).content.decode()
    assert "Nothing runs here yet" in empty


def test_running_versions_are_not_shown_without_a_role(client, landscape):
    client.force_login(make_user("stranger"))
    assert client.get(reverse("deployments:environment_running", args=[landscape["Test"].key])).status_code == 403
