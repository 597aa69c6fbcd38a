"""What an agent runs, and what it refuses.

Every task of the agent goes through ``GuardedTask``: the message must carry the console's signature
for this front-end (``agent.signing``), must not name another releases folder than the agent's own,
and must not have run before. Every answer is signed with the same key, so that the console can
tell it from one written into the result backend by someone else. A refused message changes nothing on disk: it is logged, kept in the
agent's ledger and answered with ``{"ok": false, "refused": true, "error": ...}``; the agent's report
lists the latest refusals, so the console shows them.

The ledger lives under the agent's own releases folder (``.lifetime-agent/``): the ids of the tasks
it ran (with their answers, until their signature expires) and the latest refusals.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from celery import Task

from agent import signing

logger = logging.getLogger("agent.guard")

LEDGER = ".lifetime-agent"
REFUSALS_KEPT = 50
# Pruning the ids of tasks that ran is a directory scan: not on every task (per process).
PRUNE_EVERY_S = 300.0
_PRUNED_AT: dict[Path, float] = {}


def canonical_folder(path: str | os.PathLike[str]) -> str:
    """The folder as the kernel finds it: absolute, symbolic links resolved, no ``//`` or ``..``."""
    return os.path.realpath(os.path.abspath(os.fspath(path)))


class Ledger:
    """The ids of the tasks this agent ran, and what it refused, under its releases folder."""

    def __init__(self, root: Path) -> None:
        self.folder = Path(root) / LEDGER
        self.ran = self.folder / "ran"
        self.refusals_file = self.folder / "refused.json"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.ran.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _write(self, path: Path, data: Any) -> None:
        temp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
        temp.write_text(json.dumps(data, sort_keys=True))
        os.replace(temp, path)

    def answer_of(self, task_id: str) -> dict[str, Any] | None:
        """What the task ``task_id`` answered when it ran here (None: it never ran)."""
        try:
            return json.loads((self.ran / f"{task_id}.json").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def remember(self, *, task_id: str, task: str, expires_at: int, answer: Any) -> None:
        # One file per task, written whole then renamed: no lock needed, a reader sees it or not.
        if not self.ran.is_dir():
            self.ran.mkdir(parents=True, exist_ok=True)
        self._write(self.ran / f"{task_id}.json", {"task": task, "exp": expires_at, "answer": answer})
        now = time.time()
        if now - _PRUNED_AT.get(self.ran, 0.0) > PRUNE_EVERY_S:
            _PRUNED_AT[self.ran] = now
            self._prune(now)

    def _prune(self, now: float) -> None:
        # A task id only needs remembering while its signature is valid: after that the signature
        # check refuses a replay by itself.
        for entry in self.ran.glob("*.json"):
            try:
                expires_at = json.loads(entry.read_text()).get("exp", 0)
            except (OSError, ValueError):
                expires_at = 0
            if expires_at < now:
                entry.unlink(missing_ok=True)

    def refuse(self, *, task: str, task_id: str, queue: str, reason: str) -> dict[str, Any]:
        entry = {"at": time.time(), "task": task, "task_id": str(task_id)[:64], "queue": queue, "reason": reason}
        with self._locked():
            refusals = self.refusals()
            total = self.refused_total() + 1
            refusals.append(entry)
            self._write(self.refusals_file, {"total": total, "latest": refusals[-REFUSALS_KEPT:]})
        return entry

    def refusals(self) -> list[dict[str, Any]]:
        try:
            return list(json.loads(self.refusals_file.read_text()).get("latest") or [])
        except (FileNotFoundError, ValueError):
            return []

    def refused_total(self) -> int:
        try:
            return int(json.loads(self.refusals_file.read_text()).get("total") or 0)
        except (FileNotFoundError, ValueError):
            return 0


def _settings() -> Any:
    # Imported late: agent.celery loads the agent's configuration, which tests of this module
    # (and the console, which imports agent.signing) do not have.
    from agent.celery import settings

    return settings


class GuardedTask(Task):
    """The base of every agent task: verify, refuse or run, and remember what ran."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        settings = _settings()
        request = self.request
        queue = (request.delivery_info or {}).get("routing_key") or ""
        task_id = request.id or ""
        headers = request.headers if isinstance(request.headers, Mapping) else {}
        auth = getattr(request, signing.HEADER, None) or headers.get(signing.HEADER)
        ledger = Ledger(settings.releases_root)
        try:
            expires_at = signing.verify(
                key=settings.key,
                auth=auth,
                task=self.name,
                task_id=task_id,
                queue=queue,
                args=args,
                kwargs=kwargs,
                now=time.time(),
            )
            given = kwargs.get("releases_root")
            if given and canonical_folder(given) != str(settings.releases_root):
                raise signing.SignatureRefused(
                    f"the message names the releases folder {given}, this agent serves only its own folder"
                )
        except signing.SignatureRefused as exc:
            refusal = self._refused(ledger, task_id=task_id, queue=queue, reason=exc.reason)
            return signing.sign_answer(key=settings.key, task_id=str(task_id), answer=refusal)
        earlier = ledger.answer_of(task_id)
        if earlier is not None:
            # A message that already ran here: a replay, or a redelivery after the answer was
            # stored but before the broker heard of it. Either way, run nothing and say it again.
            self._refused(ledger, task_id=task_id, queue=queue, reason="this task already ran here; not run again")
            return earlier.get("answer")
        answer = signing.sign_answer(key=settings.key, task_id=task_id, answer=super().__call__(*args, **kwargs))
        ledger.remember(task_id=task_id, task=self.name, expires_at=expires_at, answer=answer)
        return answer

    def _refused(self, ledger: Ledger, *, task_id: str, queue: str, reason: str) -> dict[str, Any]:
        logger.warning("refused %s (task id %s, queue %s): %s", self.name, task_id, queue, reason)
        ledger.refuse(task=self.name, task_id=task_id, queue=queue, reason=reason)
        return {"ok": False, "refused": True, "error": f"the agent refused the message: {reason}"}
