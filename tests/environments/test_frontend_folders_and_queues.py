"""A Test front-end's folder can never be Production's, however it is written; the check creates
nothing and says the same whatever exists; queues have the form the agents use."""

from __future__ import annotations

import html
import os

import pytest
from django.urls import reverse

from environments import folders
from environments.models import FrontEnd

IN_USE = "cannot be used: it is, contains or lies inside a system folder or the folder of another front-end"


@pytest.fixture
def production_folder(landscape) -> str:
    return FrontEnd.objects.get(environment=landscape["Production"], name="fe1").releases_root


def _add(client, environment, releases_root: str, **extra):
    data = {"name": "fe9", "releases_root": releases_root, "enabled": "on", **extra}
    return client.post(reverse("environments:frontend_create", args=[environment.key]), data)


def test_every_spelling_of_another_environments_folder_is_refused(
    client, landscape, admin_user, production_folder, tmp_path
):
    client.force_login(admin_user)
    test_env = landscape["Test"]
    link = tmp_path / "innocent-looking"
    os.symlink(production_folder, link)
    tricks = [
        production_folder,
        "/" + production_folder,  # //tmp/...
        production_folder.replace("/", "//"),
        production_folder + "/",
        production_folder + "/.",
        production_folder.replace("/tmp/", "/tmp/./", 1),
        "/proc/self/root" + production_folder,
        "/proc/1/root" + production_folder,
        str(link),  # a symbolic link on this host to Production's folder
        production_folder + "/releases",  # inside it
        os.path.dirname(production_folder),  # around it
    ]
    for trick in tricks:
        response = _add(client, test_env, trick)
        assert response.status_code == 200, trick
        assert IN_USE in html.unescape(response.content.decode()), trick
    assert "../" not in production_folder
    response = _add(client, test_env, production_folder + "/../fe1")
    assert "without '..'" in html.unescape(response.content.decode())
    assert test_env.frontends.count() == 2


def test_system_folders_are_refused_with_the_same_message(client, landscape, admin_user):
    client.force_login(admin_user)
    for path in ["/", "/proc/self/cwd", "/etc/lifetime", "/dev/shm/fe", "/sys/kernel", "/usr/lib/fe", "/run/x"]:
        assert IN_USE in html.unescape(_add(client, landscape["Test"], path).content.decode()), path


def test_the_folder_check_creates_nothing_and_does_not_tell_what_exists(client, landscape, admin_user, tmp_path):
    client.force_login(admin_user)
    missing = tmp_path / "deep" / "new" / "folder"
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    response = _add(client, landscape["Test"], str(missing))
    assert response.status_code == 200 and "shown only this once" in html.unescape(response.content.decode())
    assert not (tmp_path / "deep").exists(), "the console created a folder where a manager typed"
    # A path through a file, and a path that exists, are accepted or refused on their text alone.
    assert "shown only this once" in _add(client, landscape["Test"], str(blocker / "x"), name="fe10").content.decode()
    saved = FrontEnd.objects.get(environment=landscape["Test"], name="fe9")
    assert saved.releases_root == str(missing)


def test_a_folder_is_stored_in_its_canonical_form(client, landscape, admin_user, tmp_path):
    client.force_login(admin_user)
    _add(client, landscape["Test"], "//" + str(tmp_path / "x").lstrip("/") + "//./fe/")
    assert FrontEnd.objects.get(name="fe9").releases_root == str(tmp_path / "x" / "fe")


def test_queues_have_the_form_of_their_environment(client, landscape, admin_user, tmp_path):
    client.force_login(admin_user)
    test_env = landscape["Test"]
    for queue in [
        "frontend.production.fe9",
        "frontend.test.fe9.extra",
        "stages",
        "frontend.test.",
        "frontend.test.FE9",
    ]:
        page = html.unescape(_add(client, test_env, str(tmp_path / "fe9"), queue=queue).content.decode())
        assert "A queue of Test is named frontend.test.<name>" in page, queue
    assert not test_env.frontends.filter(name="fe9").exists()
    _add(client, test_env, str(tmp_path / "fe9"), queue="frontend.test.fe9-blue")
    assert test_env.frontends.get(name="fe9").queue == "frontend.test.fe9-blue"


def test_the_canonical_form_of_a_folder():
    assert folders.canonical("//srv//lifetime/./fe1/") == "/srv/lifetime/fe1"
    for bad in ["srv/fe1", "/srv/../etc", "/srv/fe\x001", "C:\\fe1", ""]:
        with pytest.raises(folders.FolderRefused):
            folders.canonical(bad)
