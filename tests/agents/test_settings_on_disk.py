"""Settings documents on a front-end's disk, without Celery: kept beside the releases under their
digest, readable by the agent's user only, switched with the release and put back by a revert; the
front-end server hands them to the application."""

from __future__ import annotations

import hashlib
import json
import stat

import pytest

from agent import releases, signing
from agent.releases import ReleaseRefused
from frontend_server import FrontEndServer
from tests.agents.test_releases_on_disk import install


def document(values: dict) -> tuple[str, bytes]:
    data = json.dumps({"settings": values}).encode()
    return hashlib.sha256(data).hexdigest(), data


def test_a_settings_document_must_match_its_digest_and_is_private(tmp_path):
    sha, data = document({"greeting": "Hello"})
    with pytest.raises(ReleaseRefused, match="does not match its digest"):
        releases.install_settings(tmp_path, "hello", sha, data + b" ")
    name = releases.install_settings(tmp_path, "hello", sha, data)
    path = tmp_path / "releases" / "hello" / ".settings" / name
    assert path.read_bytes() == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_settings_switch_with_the_release_and_a_revert_puts_both_back(tmp_path):
    v1, v2 = install(tmp_path, "1.0.0"), install(tmp_path, "2.0.0")
    old_sha, old = document({"greeting": "Hello"})
    new_sha, new = document({"greeting": "Bonjour"})
    releases.install_settings(tmp_path, "hello", old_sha, old)
    releases.install_settings(tmp_path, "hello", new_sha, new)
    releases.switch_links(root=tmp_path, switch_id="first", links={"hello": v1}, settings={"hello": old_sha})
    server = FrontEndServer(tmp_path)
    assert server.settings_of("hello") == {"greeting": "Hello"}

    moved = releases.switch_links(root=tmp_path, switch_id="second", links={"hello": v2}, settings={"hello": new_sha})
    assert moved["settings_before"] == {"hello": old_sha}
    assert server.settings_of("hello") == {"greeting": "Bonjour"}
    assert releases.current_release(tmp_path, "hello") == v2

    releases.revert_links(root=tmp_path, switch_id="second")
    assert server.settings_of("hello") == {"greeting": "Hello"}
    assert releases.current_release(tmp_path, "hello") == v1
    # A release folder never mistakes the settings link or folder for a release.
    assert releases.report(tmp_path)["applications"]["hello"]["releases"] == [v1, v2]


def test_a_switch_refuses_settings_that_are_not_on_the_front_end(tmp_path):
    v1 = install(tmp_path, "1.0.0")
    with pytest.raises(ReleaseRefused, match="are not on this front-end"):
        releases.switch_links(root=tmp_path, switch_id="s", links={"hello": v1}, settings={"hello": "a" * 64})
    assert releases.current_release(tmp_path, "hello") is None


def test_a_signed_request_is_bound_to_its_path_and_key():
    key = signing.new_key()
    header = signing.sign_request(key=key, path="/agents/settings/a/b/hello", now=1000.0)
    signing.verify_request(key=key, header=header, path="/agents/settings/a/b/hello", now=1001.0)
    for other_key, path, now in (
        (signing.new_key(), "/agents/settings/a/b/hello", 1001.0),
        (key, "/agents/settings/a/b/other", 1001.0),
        (key, "/agents/settings/a/b/hello", 1000.0 + signing.REQUEST_VALIDITY_S + 1),
    ):
        with pytest.raises(signing.SignatureRefused):
            signing.verify_request(key=other_key, header=header, path=path, now=now)
