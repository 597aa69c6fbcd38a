"""Uploads that must fail, naming the front-end, and leave what runs untouched."""

from __future__ import annotations

import io
import logging
import os
import tarfile

import pytest

from deployments.artifacts import store as artifacts
from deployments.steps import ListLog, StepFailed
from deployments.steps.switch import enabled_frontends
from deployments.steps.upload import Binary, upload_binaries
from tests.agents.conftest import tar_gz, web_app_binary
from tests.processes import free_port

pytestmark = pytest.mark.e2e


def test_upload_names_the_frontends_with_a_forged_token_or_no_way_to_the_console(
    frontend_hosts, store_binary, caplog, settings
):
    environment = frontend_hosts.environment()
    good = frontend_hosts.start(environment, 1)[0]
    forged = frontend_hosts.start(environment, 1, agent_env={"AGENT_TOKEN": "not-the-agent-token"})[0]
    cut_off = frontend_hosts.start(environment, 1, agent_env={"CONSOLE_BASE_URL": f"http://127.0.0.1:{free_port()}"})[0]
    binary = Binary("hello", "1.0.0", store_binary("hello", "1.0.0"))

    with caplog.at_level(logging.WARNING, logger="lifetime.agents"), pytest.raises(StepFailed) as failure:
        upload_binaries(frontends=enabled_frontends(environment), binaries=[binary], log=ListLog(), timeout_s=20)

    message = failure.value.message
    assert f"Upload failed on front-end {forged.row.name}, {cut_off.row.name}" in message
    assert "The running versions are untouched." in message
    by_frontend = {u["frontend"]: u for u in failure.value.detail["uploads"]}
    assert by_frontend[good.row.name]["ok"]
    assert "HTTP 403" in by_frontend[forged.row.name]["error"]
    assert "cannot reach the console" in by_frontend[cut_off.row.name]["error"]
    assert (good.root / "releases" / "hello" / binary.release).is_dir()
    for fe in (forged, cut_off):
        assert not (fe.root / "releases" / "hello" / binary.release).exists()
        assert not list((fe.root / "releases" / "hello").glob(".*")), "no temporary file left behind"
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert any("wrong agent token" in line for line in refusals)
    assert not any("not-the-agent-token" in line or settings.AGENT_TOKEN in line for line in refusals)


def test_upload_refuses_a_tampered_artifact_and_archives_that_escape_their_folder(frontend_hosts, store_binary):
    environment = frontend_hosts.environment()
    fe = frontend_hosts.start(environment, 1)[0]
    frontends = enabled_frontends(environment)

    # The console checks the digest of what it serves: a small damaged blob is refused outright...
    tampered = Binary("hello", "1.0.0", store_binary("hello", "1.0.0"))
    artifacts.path_for(tampered.sha256).write_bytes(b"not what was compiled")
    with pytest.raises(StepFailed) as failure:
        upload_binaries(frontends=frontends, binaries=[tampered], log=ListLog())
    assert f"front-end {fe.row.name}: the console answered HTTP 500" in failure.value.message
    assert "does not match its digest" in failure.value.message

    # ...and a large one is cut short before its last bytes, which the agent's own check catches.
    large = web_app_binary_with_padding("hello", "1.0.1", padding=os.urandom(3 * 1024 * 1024))
    damaged = Binary("hello", "1.0.1", artifacts.put_bytes(large)[0])
    blob = artifacts.path_for(damaged.sha256)
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(StepFailed) as failure:
        upload_binaries(frontends=frontends, binaries=[damaged], log=ListLog())
    assert f"front-end {fe.row.name}: digest mismatch" in failure.value.message
    assert not (fe.root / "releases" / "hello" / damaged.release).exists()

    def with_link(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("hello_app/passwd")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)

    evil = {
        "leaves its folder": tar_gz({"lifetime-release.json": b"{}", "../../outside.py": b"x = 1\n"}),
        "absolute path": tar_gz({"lifetime-release.json": b"{}", "/tmp/absolute.py": b"x = 1\n"}),
        "a link": tar_gz({"lifetime-release.json": b"{}"}, extra=with_link),
    }
    for reason, data in evil.items():
        sha256, _ = artifacts.put_stream(io.BytesIO(data))
        with pytest.raises(StepFailed) as failure:
            upload_binaries(frontends=frontends, binaries=[Binary("hello", "6.6.6", sha256)], log=ListLog())
        assert "refused" in failure.value.message and reason in failure.value.message, failure.value.message
    assert not (fe.root.parent / "outside.py").exists()
    assert [p.name for p in (fe.root / "releases" / "hello").iterdir()] == []


def web_app_binary_with_padding(application: str, version: str, *, padding: bytes) -> bytes:
    """A binary larger than one chunk of the console's download stream (random bytes do not compress)."""
    small = web_app_binary(application, version)
    with tarfile.open(fileobj=io.BytesIO(small), mode="r:gz") as archive:
        members = {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}
    members["padding.bin"] = padding
    return tar_gz(members)
