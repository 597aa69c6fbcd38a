"""Prepare's upload step: every front-end of the target downloads and unpacks every binary.

Nothing is switched: each agent unpacks beside the running release. The step fails, naming the
front-ends, if any one of them could not store any binary; a later Prepare uploads again and a
release already present with the same digest is not downloaded twice.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Collection, Mapping, Sequence

from agent.releases import release_name
from deployments.steps import StepFailed, StepLog
from environments.agents import AgentCall, send, wait
from environments.models import FrontEnd

UPLOAD_TIMEOUT_S = 600.0


@dataclasses.dataclass(frozen=True)
class Binary:
    """A compiled binary to put on the front-ends (ApplicationVersion.binary_sha256 and friends)."""

    application: str
    version: str
    sha256: str

    @property
    def release(self) -> str:
        return release_name(self.version, self.sha256)


@dataclasses.dataclass(frozen=True)
class BinaryUpload:
    frontend: str
    application: str
    release: str
    ok: bool
    downloaded: bool
    bytes: int
    seconds: float | None
    error: str


@dataclasses.dataclass(frozen=True)
class UploadResult:
    uploads: list[BinaryUpload]
    seconds: float

    def by_frontend(self) -> dict[str, list[BinaryUpload]]:
        grouped: dict[str, list[BinaryUpload]] = {}
        for upload in self.uploads:
            grouped.setdefault(upload.frontend, []).append(upload)
        return grouped


def upload_binaries(
    *,
    frontends: Sequence[FrontEnd],
    binaries: Sequence[Binary],
    log: StepLog,
    timeout_s: float = UPLOAD_TIMEOUT_S,
    only: Mapping[str, Collection[str]] | None = None,
) -> UploadResult:
    """Send one upload per (front-end, binary) to each front-end's queue and wait for all of them.

    ``only``: ``{application: front-end names}`` for applications deployed to a zone; the others go
    to every front-end. Front-ends download in parallel (each agent works through its own queue one
    task at a time). Raises StepFailed naming every front-end that failed; what runs is never touched.
    """
    started = time.monotonic()
    frontends = [fe for fe in frontends if fe.enabled]
    if not frontends:
        raise StepFailed("The target environment has no enabled front-end to upload to.")
    only = only or {}
    pairs = [
        (fe, binary)
        for fe in frontends
        for binary in binaries
        if binary.application not in only or fe.name in only[binary.application]
    ]
    total = len(pairs)
    log.progress(0, total)
    calls = [
        _send_or_fail(
            AgentCall(
                fe,
                "agent.upload",
                {
                    "releases_root": fe.releases_root,
                    "application": binary.application,
                    "version": binary.version,
                    "sha256": binary.sha256,
                },
            ),
            expires_in_s=timeout_s,
        )
        for fe, binary in pairs
    ]
    done = 0

    def on_answer(call: AgentCall) -> None:
        nonlocal done
        done += 1
        log.progress(done, total)
        answer = call.answer or {}
        what = f"{call.kwargs['application']} {call.kwargs['version']}"
        if call.ok:
            how = f"downloaded {answer.get('bytes', 0)} bytes" if answer.get("downloaded") else "already present"
            log.info(f"Front-end {call.frontend.name}: {what} ready ({how}, {call.seconds:.2f} s).")

    try:
        wait(calls, timeout_s=timeout_s, on_answer=on_answer)
    except Exception as exc:
        # The broker went away while the answers came in: the answers not read are this upload's
        # failures, said as such (Prepare then fails with a sentence, never an unexpected error).
        for call in calls:
            if call.answer is None and not call.error:
                call.error = f"its answer could not be read from the message broker ({_sentence(exc)})"
    uploads = [
        BinaryUpload(
            frontend=call.frontend.name,
            application=call.kwargs["application"],
            release=release_name(call.kwargs["version"], call.kwargs["sha256"]),
            ok=call.ok,
            downloaded=bool((call.answer or {}).get("downloaded")),
            bytes=int((call.answer or {}).get("bytes") or 0),
            seconds=call.seconds,
            error=call.failure(),
        )
        for call in calls
    ]
    failed = [(call, f"{call.kwargs['application']} {call.kwargs['version']}") for call in calls if not call.ok]
    for call, what in failed:
        log.error(f"Upload of {what} to front-end {call.frontend.name} failed: {call.failure()}.")
    if failed:
        names = sorted({call.frontend.name for call, _ in failed})
        first_call, first_what = failed[0]
        raise StepFailed(
            f"Upload failed on front-end {', '.join(names)}: {first_what}, {first_call.problem()}. "
            "The running versions are untouched.",
            detail={"uploads": [dataclasses.asdict(u) for u in uploads]},
        )
    return UploadResult(uploads=uploads, seconds=time.monotonic() - started)


def _send_or_fail(call: AgentCall, *, expires_in_s: float) -> AgentCall:
    """``send``, where a broker that cannot be reached is this front-end's failed upload (named in
    the step's sentence), not an exception that ends the stage as an unexpected error."""
    try:
        return send(call, expires_in_s=expires_in_s)
    except Exception as exc:
        call.result = None
        call.error = f"could not be sent to its agent through the message broker ({_sentence(exc)})"
        return call


def _sentence(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{exc.__class__.__name__}: {first}" if first else exc.__class__.__name__
