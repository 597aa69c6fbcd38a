"""Compile: byte-compiled, deterministic, cached, runnable by a front-end; syntax errors name file and line."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile

import pytest

from agent.releases import unpack_archive
from deployments.artifacts import store as artifacts
from deployments.catalog.bundles import read_bundle
from deployments.steps import ListLog, StepFailed
from deployments.steps.compile import build_binary, compile_version
from examples.build import bundle_files, pack


def test_compile_is_deterministic_and_a_compiled_version_is_not_compiled_again(register):
    version = register("hr_core", "1.0.0")
    first = compile_version(version=version, log=ListLog())
    assert not first.cached and first.modules > 4
    version.refresh_from_db()
    assert version.binary_sha256 == first.binary_sha256 and version.compiled_at and version.compile_seconds
    assert artifacts.verify(first.binary_sha256)

    again, _ = build_binary(
        bundle=read_bundle(artifacts.open_blob(version.bundle_sha256).read()),
        bundle_sha256=version.bundle_sha256,
        log=ListLog(),
    )
    assert artifacts.open_blob(first.binary_sha256).read() == again

    log = ListLog()
    cached = compile_version(version=version, log=log)
    assert cached.cached and cached.binary_sha256 == first.binary_sha256
    assert "already compiled" in log.messages()[0]


def test_compiling_in_two_processes_gives_the_same_bytes_as_in_one():
    bundle = read_bundle(pack(bundle_files("hr_core", "1.0.0", modules=220), "tar.gz"))
    log = ListLog()
    parallel, modules = build_binary(bundle=bundle, bundle_sha256="0" * 64, log=log, workers=2)
    serial, _ = build_binary(bundle=bundle, bundle_sha256="0" * 64, log=ListLog(), workers=1)
    assert modules > 200 and parallel == serial
    assert (log.done, log.total) == (modules, modules)


def test_a_bundle_with_a_syntax_error_fails_compile_with_file_and_line(register):
    broken = b"def ok():\n    return 1\n\ndef broken(:\n    pass\n"
    version = register("leave_portal", "1.0.0", {"src/leave_portal/broken.py": broken})
    log = ListLog()
    with pytest.raises(StepFailed) as caught:
        compile_version(version=version, log=log)
    assert "src/leave_portal/broken.py, line 4" in caught.value.message
    assert caught.value.detail["errors"][0]["file"] == "src/leave_portal/broken.py"
    version.refresh_from_db()
    assert version.binary_sha256 == ""


def test_the_binary_holds_what_a_front_end_needs_and_its_entry_point_answers(register, tmp_path):
    version = register("leave_portal", "1.1.0")
    result = compile_version(version=version, log=ListLog())
    binary = artifacts.open_blob(result.binary_sha256).read()
    with tarfile.open(fileobj=io.BytesIO(binary), mode="r:gz") as archive:
        names = archive.getnames()
        assert names == sorted(names)
        assert {"lifetime.toml", "lifetime-release.json", "lib/leave_portal/app.pyc"} <= set(names)
        assert not any(name.endswith(".py") for name in names)
        assert {member.mtime for member in archive.getmembers()} == {315532800}
        release = json.loads(archive.extractfile("lifetime-release.json").read())
    # Unpacked by the front-end's own code (tarfile's extraction filters need Python 3.11.4; Debian 12
    # ships 3.11.2).
    (tmp_path / "binary.tar.gz").write_bytes(binary)
    (tmp_path / "release").mkdir()
    unpack_archive(tmp_path / "binary.tar.gz", tmp_path / "release", max_bytes=64 * 1024 * 1024)
    assert release["wsgi"] == "leave_portal.app:application" and release["path"] == "lib"
    # A fresh interpreter with only the release on its path, as a front-end would run it.
    program = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from leave_portal.app import application;"
        "print(b''.join(application({'PATH_INFO': '/'}, lambda *a: None)).decode())"
    )
    answer = subprocess.run(
        [sys.executable, "-c", program, str(tmp_path / "release" / "lib")],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        check=True,
    ).stdout
    assert answer.startswith("leave_portal 1.1.0\n")
    assert '"database": "not configured"' in answer
