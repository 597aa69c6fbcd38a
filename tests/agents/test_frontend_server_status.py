"""The front-end server tells what runs and what fails only to its agent (token) and to its own host."""

from __future__ import annotations

import json

from frontend_server import FrontEndServer

TOKEN = "agent-token-of-this-host"


def _get(app: FrontEndServer, path: str, *, remote: str, token: str | None = None) -> tuple[str, dict]:
    environ = {"PATH_INFO": path, "REMOTE_ADDR": remote, "REQUEST_METHOD": "GET"}
    if token:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    seen: dict = {}

    def start_response(status, headers):
        seen["status"] = status

    body = b"".join(app(environ, start_response))
    return seen["status"], json.loads(body) if body.startswith(b"{") else {"text": body.decode()}


def _broken_frontend(tmp_path) -> FrontEndServer:
    release = tmp_path / "releases" / "hello" / "1.0.0-abcdefabcdef"
    release.mkdir(parents=True)
    (release / "lifetime-release.json").write_text(
        json.dumps({"application": "hello", "version": "1.0.0", "wsgi": "nope:app"})
    )
    (tmp_path / "releases" / "hello" / "current").symlink_to(release.name)
    return FrontEndServer(tmp_path, status_token=TOKEN)


def test_releases_are_refused_to_other_hosts_and_told_to_the_agent_and_loopback(tmp_path):
    app = _broken_frontend(tmp_path)

    status, body = _get(app, "/_lifetime/releases", remote="10.1.2.3")
    assert status.startswith("403") and "releases_root" not in json.dumps(body)
    assert _get(app, "/_lifetime/releases", remote="10.1.2.3", token="guessed")[0].startswith("403")

    for remote, token in (("127.0.0.1", None), ("::1", None), ("10.1.2.3", TOKEN)):
        status, body = _get(app, "/_lifetime/releases", remote=remote, token=token)
        assert status.startswith("200") and body["applications"]["hello"]["version"] == "1.0.0", remote


def test_health_answers_everyone_with_its_status_and_only_the_agent_with_what_fails(tmp_path):
    app = _broken_frontend(tmp_path)

    status, body = _get(app, "/_health", remote="10.1.2.3")
    assert status.startswith("503") and body == {"status": "failing"}
    status, body = _get(app, "/_health", remote="10.1.2.3", token=TOKEN)
    assert status.startswith("503") and "cannot load nope:app" in body["problems"][0]
