"""Compile step: byte-compile an application version and pack its deterministic binary archive.

The binary archive (a tar.gz, what front-end agents unpack) is what a front-end runs: ``lib/`` holds
the compiled modules (sourceless ``.pyc`` files next to where the sources were, which Python imports
directly) and the package's data files, ``lifetime.toml`` is the bundle's manifest,
``lifetime-release.json`` says how to run it (application, version, WSGI entry point, path). The
same bundle always gives the same bytes (sorted entries, fixed times and modes, hash-based pycs),
so its sha256 identifies the build and a version is compiled once.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from django.utils import timezone

from deployments.artifacts import store as artifacts
from deployments.catalog.bundles import MANIFEST_NAME, Bundle
from deployments.catalog.store import bundle_of, pack_deterministic_tar_gz
from deployments.models import ApplicationVersion
from deployments.steps import StepFailed, StepLog

RELEASE_FORMAT = 1
RELEASE_MANIFEST = "lifetime-release.json"
# Below this many modules, starting extra interpreters costs more than it saves.
PARALLEL_FROM_MODULES = 200
WORKER_SCRIPT = Path(__file__).with_name("bytecode.py")
SHOWN_ERRORS = 10


@dataclasses.dataclass(frozen=True)
class CompileResult:
    binary_sha256: str
    binary_size: int
    seconds: float
    modules: int
    cached: bool


def compile_version(*, version, log: StepLog, workers: int | None = None) -> CompileResult:
    """Compile ``version`` (an ApplicationVersion) unless it already was; record the binary on it."""
    label = f"{version.application.name} {version.version}"
    if version.binary_sha256 and artifacts.exists(version.binary_sha256):
        log.info(f"{label} is already compiled ({version.binary_size} bytes, {version.binary_sha256[:12]}).")
        log.progress(1, 1)
        return CompileResult(
            binary_sha256=version.binary_sha256,
            binary_size=version.binary_size,
            seconds=version.compile_seconds or 0.0,
            modules=0,
            cached=True,
        )
    started = time.monotonic()
    bundle = bundle_of(version)
    data, modules = build_binary(bundle=bundle, bundle_sha256=version.bundle_sha256, log=log, workers=workers)
    sha256, size = artifacts.put_bytes(data)
    seconds = time.monotonic() - started
    ApplicationVersion.objects.filter(pk=version.pk).update(
        binary_sha256=sha256, binary_size=size, compiled_at=timezone.now(), compile_seconds=seconds
    )
    version.refresh_from_db(fields=["binary_sha256", "binary_size", "compiled_at", "compile_seconds"])
    log.info(f"Compiled {label}: {modules} modules in {seconds:.1f} s, binary {size} bytes ({sha256[:12]}).")
    return CompileResult(binary_sha256=sha256, binary_size=size, seconds=seconds, modules=modules, cached=False)


def build_binary(*, bundle: Bundle, bundle_sha256: str, log: StepLog, workers: int | None = None) -> tuple[bytes, int]:
    """The binary archive's bytes and the number of compiled modules; StepFailed on a compile error."""
    sources = bundle.sources()
    modules = sorted(p for p in sources if p.endswith(".py"))
    # Stale bytecode shipped in a bundle is never trusted; everything else under src/ is package data.
    data_files = sorted(
        p for p in sources if not p.endswith((".py", ".pyc", ".pyo")) and "__pycache__" not in p.split("/")
    )
    workers = workers or os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="lifetime-compile-") as tmp:
        out_root = Path(tmp) / "out"
        out_root.mkdir()
        # Always in fresh interpreters with a fixed hash seed: set and frozenset constants are
        # marshalled in hash order, so bytecode compiled under a random seed is not reproducible.
        if len(modules) < PARALLEL_FROM_MODULES:
            workers = 1
        errors = _compile_in_processes(sources, out_root, modules, workers=workers, log=log)
        if errors:
            errors.sort(key=lambda e: (e["file"], e["line"] or 0))
            for error in errors[:SHOWN_ERRORS]:
                log.error(f"{error['file']}, line {error['line']}: {error['message']}")
            first = errors[0]
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise StepFailed(
                f"Compile error in {first['file']}, line {first['line']}: {first['message']}{more}.",
                detail={"errors": errors[:SHOWN_ERRORS]},
            )
        entries: dict[str, bytes] = {f"lib/{rel}c": (out_root / (rel + "c")).read_bytes() for rel in modules}
    for relative in data_files:
        entries[f"lib/{relative}"] = sources[relative]
    manifest = bundle.manifest
    entries[MANIFEST_NAME] = bundle.files[MANIFEST_NAME]
    entries[RELEASE_MANIFEST] = json.dumps(
        {
            "format": RELEASE_FORMAT,
            "application": manifest.name,
            "name": manifest.name,
            "version": manifest.version,
            "kind": manifest.kind,
            "wsgi": manifest.wsgi,
            "path": "lib",
            "bundle_sha256": bundle_sha256,
            "python": sys.implementation.cache_tag,
            "pyc_magic": importlib.util.MAGIC_NUMBER.hex(),
            "modules": len(modules),
            "native_hash": manifest.native_hash,
        },
        indent=2,
        sort_keys=True,
    ).encode()
    return pack_deterministic_tar_gz(entries), len(modules)


def _compile_in_processes(
    sources: dict[str, bytes], out_root: Path, modules: list[str], *, workers: int, log: StepLog
) -> list[dict]:
    # Round-robin over the sorted list spreads big and small packages across the workers.
    shares = [share for share in (modules[i::workers] for i in range(workers)) if share]
    done = [0] * len(shares)
    errors: list[dict] = []
    lock = threading.Lock()
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    processes: list[tuple[subprocess.Popen, threading.Thread, object]] = []
    for index, share in enumerate(shares):
        # stderr goes to a file: a worker printing many warnings must not block on a full pipe.
        stderr = tempfile.TemporaryFile(mode="w+")
        process = subprocess.Popen(
            [sys.executable, str(WORKER_SCRIPT), str(out_root)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
        )

        def feed(process: subprocess.Popen = process, share: list[str] = share) -> None:
            # The sources go through the pipe (path, size, bytes): no temporary copy on disk.
            assert process.stdin is not None
            try:
                for rel in share:
                    process.stdin.write(f"{rel}\n{len(sources[rel])}\n".encode() + sources[rel])
                process.stdin.close()
            except BrokenPipeError:
                pass  # the worker died: its exit code says so below

        def read(process: subprocess.Popen = process, index: int = index) -> None:
            assert process.stdout is not None
            for line in io.TextIOWrapper(process.stdout):
                with lock:
                    done[index] += 1
                    if line.startswith("error "):
                        errors.append(json.loads(line[6:]))

        threading.Thread(target=feed, daemon=True).start()
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        processes.append((process, reader, stderr))
    total = len(modules)
    while any(reader.is_alive() for _, reader, _ in processes):
        time.sleep(0.25)
        with lock:
            log.progress(sum(done), total)
    for process, _, stderr in processes:
        process.wait()
        stderr.seek(0)
        output = stderr.read()
        stderr.close()
        if process.returncode != 0:
            raise RuntimeError(f"byte-compile worker exited with {process.returncode}: {output[-2000:]}")
    if sum(done) != total:
        raise RuntimeError(f"byte-compile workers answered for {sum(done)} of {total} modules")
    log.progress(total, total)
    return errors
