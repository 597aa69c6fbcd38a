"""What an agent does on a front-end's disk, without Celery: unpacking safely, switching links
atomically, reverting, reporting and cleaning up."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import threading
import time
from pathlib import Path

import pytest

from agent import releases
from agent.releases import ReleaseRefused
from tests.agents.conftest import tar_gz, web_app_binary
from tests.processes import FrontEndServer


def install(root: Path, version: str, *, application: str = "hello") -> str:
    data = web_app_binary(application, version)
    sha256 = hashlib.sha256(data).hexdigest()
    archive = root / f"{version}.tar.gz"
    root.mkdir(parents=True, exist_ok=True)
    archive.write_bytes(data)
    releases.install_release(
        root=root, application=application, version=version, sha256=sha256, archive=archive, max_bytes=10**6
    )
    archive.unlink()
    return releases.release_name(version, sha256)


def unpack(tmp_path: Path, data: bytes, *, max_bytes: int = 10**6) -> dict:
    archive = tmp_path / "binary.tar.gz"
    archive.write_bytes(data)
    target = tmp_path / "target"
    target.mkdir()
    return releases.unpack_archive(archive, target, max_bytes=max_bytes)


def _special(kind: bytes, name: str = "hello_app/x", linkname: str = ""):
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = linkname
        tar.addfile(info)

    return add


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (tar_gz({"lifetime-release.json": b"{}", "../evil.py": b""}), "leaves its folder"),
        (tar_gz({"lifetime-release.json": b"{}", "hello_app/../../evil.py": b""}), "leaves its folder"),
        (tar_gz({"lifetime-release.json": b"{}", "/etc/cron.d/evil": b""}), "absolute path"),
        (tar_gz({}, extra=_special(tarfile.SYMTYPE, linkname="/etc/passwd")), "a link"),
        (tar_gz({}, extra=_special(tarfile.LNKTYPE, linkname="lifetime-release.json")), "a link"),
        (tar_gz({}, extra=_special(tarfile.CHRTYPE)), "device or special file"),
        (tar_gz({}, extra=_special(tarfile.FIFOTYPE)), "device or special file"),
        (tar_gz({"lifetime-release.json": b"{}", "big.bin": b"\0" * 5000}), "more than 4096 bytes"),
        (b"this is not a tar.gz", "not a readable tar.gz"),
        (tar_gz({"hello_app/__init__.py": b""}), "no lifetime-release.json"),
    ],
)
def test_agent_refuses_archives_that_could_escape_or_explode(tmp_path, data, reason):
    with pytest.raises(ReleaseRefused, match=reason):
        unpack(tmp_path, data, max_bytes=4096)
    assert not (tmp_path / "evil.py").exists()


def test_a_release_lands_beside_the_running_one_and_only_when_complete(tmp_path):
    root = tmp_path / "fe"
    v1 = install(root, "1.0.0")
    releases.point_current(root, "hello", v1)
    with pytest.raises(ReleaseRefused):
        data = tar_gz({"lifetime-release.json": b"{}", "../x": b""})
        archive = tmp_path / "bad.tar.gz"
        archive.write_bytes(data)
        releases.install_release(
            root=root,
            application="hello",
            version="2.0.0",
            sha256=hashlib.sha256(data).hexdigest(),
            archive=archive,
            max_bytes=10**6,
        )
    assert sorted(p.name for p in (root / "releases" / "hello").iterdir()) == sorted([v1, "current"])
    assert releases.current_release(root, "hello") == v1


def test_switch_journal_makes_revert_and_redelivery_safe(tmp_path):
    root = tmp_path / "fe"
    v1, v2 = install(root, "1.0.0"), install(root, "2.0.0")
    releases.point_current(root, "hello", v1)

    first = releases.switch_links(root=root, switch_id="s1", links={"hello": v2})
    redelivered = releases.switch_links(root=root, switch_id="s1", links={"hello": v2})

    assert first["before"] == redelivered["before"] == {"hello": v1}
    assert releases.revert_links(root=root, switch_id="s1")["restored"] == {"hello": v1}
    assert releases.current_release(root, "hello") == v1
    assert releases.revert_links(root=root, switch_id="s1")["restored"] == {}, "a second revert changes nothing"

    # A revert that arrives before its switch (the agent was stopped) makes the late switch refuse.
    releases.revert_links(root=root, switch_id="s2")
    with pytest.raises(ReleaseRefused, match="already reverted"):
        releases.switch_links(root=root, switch_id="s2", links={"hello": v2})
    assert releases.current_release(root, "hello") == v1


def test_switch_refuses_before_moving_anything_when_a_release_is_missing(tmp_path):
    root = tmp_path / "fe"
    v1 = install(root, "1.0.0")
    other = install(root, "1.0.0", application="other")
    releases.point_current(root, "hello", v1)
    with pytest.raises(ReleaseRefused, match="not uploaded"):
        releases.switch_links(root=root, switch_id="s", links={"other": other, "hello": "9.9.9-000000000000"})
    assert releases.current_release(root, "other") is None


def test_cleanup_keeps_the_newest_the_current_and_the_previous_release(tmp_path):
    root = tmp_path / "fe"
    names = []
    for n in range(1, 7):
        names.append(install(root, f"{n}.0.0"))
        os.utime(root / "releases" / "hello" / names[-1], (1000 + n, 1000 + n))
    releases.point_current(root, "hello", names[0])
    releases.switch_links(root=root, switch_id="a", links={"hello": names[1]})

    removed = releases.cleanup(root, keep=2)

    left = {p.name for p in releases._releases_of(root / "releases" / "hello")}
    assert left == {names[0], names[1], names[4], names[5]}
    assert sorted(removed["hello"]) == sorted([names[2], names[3]])
    report = releases.report(root)["applications"]["hello"]
    assert report["current"] == names[1] and report["previous"] == names[0]


def test_ten_thousand_switches_never_leave_readers_without_a_current_link(tmp_path):
    root = tmp_path / "fe"
    v1, v2 = install(root, "1.0.0"), install(root, "2.0.0")
    releases.point_current(root, "hello", v1)
    link = root / "releases" / "hello" / "current"
    stop = threading.Event()
    misses: list[str] = []
    reads = [0]

    def reader() -> None:
        while not stop.is_set():
            try:
                os.stat(link)
                (link / "lifetime-release.json").read_bytes()
                reads[0] += 1
            except OSError as exc:
                misses.append(repr(exc))

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for thread in readers:
        thread.start()
    started = time.monotonic()
    try:
        for n in range(10_000):
            releases.point_current(root, "hello", v2 if n % 2 == 0 else v1)
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    elapsed = time.monotonic() - started

    assert misses == []
    assert reads[0] > 1000
    assert elapsed < 60
    assert sorted(p.name for p in (root / "releases" / "hello").iterdir()) == sorted([v1, v2, "current"])


@pytest.mark.e2e
def test_http_readers_see_no_error_while_the_running_version_switches(tmp_path):
    root = tmp_path / "fe"
    v1, v2 = install(root, "1.0.0"), install(root, "2.0.0")
    releases.point_current(root, "hello", v1)
    server = FrontEndServer(releases_root=root).start()
    try:
        server.wait_ready()
        stop = threading.Event()
        answers: dict[str, int] = {}
        errors: list[str] = []

        def reader() -> None:
            while not stop.is_set():
                status, body = server.get("/hello/")
                if status != 200:
                    errors.append(f"{status} {body[:200]}")
                answers[body] = answers.get(body, 0) + 1

        readers = [threading.Thread(target=reader) for _ in range(2)]
        for thread in readers:
            thread.start()
        try:
            for n in range(2000):
                releases.point_current(root, "hello", v2 if n % 2 == 0 else v1)
                if n % 50 == 0:
                    time.sleep(0.002)
        finally:
            stop.set()
            for thread in readers:
                thread.join()
        assert errors == []
        assert set(answers) <= {"1.0.0\n", "2.0.0\n"}
        assert sum(answers.values()) > 50
        assert server.get("/hello/") == (200, "1.0.0\n")
    finally:
        server.stop()


def test_the_agent_and_the_frontend_server_never_import_django(tmp_path):
    import subprocess
    import sys

    # As on a front-end host where Django is not installed (kombu would otherwise import a bit of
    # it opportunistically, since the console's virtualenv has it).
    code = (
        "import sys\n"
        "sys.modules['django'] = None\n"
        "import agent.tasks, frontend_server\n"
        "assert agent.tasks.app.conf.task_acks_late and agent.tasks.app.conf.worker_prefetch_multiplier == 1\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO")}
    env.update(
        AGENT_TOKEN="t",
        AGENT_KEY="k" * 43,
        AGENT_RELEASES_ROOT=str(tmp_path / "fe"),
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    for folder in ("agent", "frontend_server"):
        for path in (Path(__file__).resolve().parents[2] / folder).rglob("*.py"):
            source = path.read_text()
            assert "import django" not in source and "from django" not in source, path
            assert "from deployments" not in source and "from environments" not in source, path


def test_a_download_that_is_not_a_release_is_reported_by_manifest_checks(tmp_path):
    data = tar_gz({"lifetime-release.json": b'{"application": "hello"}'})
    with pytest.raises(ReleaseRefused, match="lacks 'version'"):
        unpack(tmp_path, data)
    assert io.BytesIO(data).read(2) == b"\x1f\x8b"
