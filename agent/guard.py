"""What an agent runs, and what it refuses.

Every task of the agent goes through ``GuardedTask``: the message must carry the console's signature
for this front-end (``agent.signing``), must not name another releases folder than the agent's own,
and must not have run before. Every answer is signed with the same key, so that the console can
tell it from one written into the result backend by someone else. A refused message changes nothing on disk: it is logged, kept in the
agent's ledger and answered with ``{"ok": false, "refused": true, "error": ...}``; the agent's report
lists the latest refusals, so the console shows them.

The ledger lives under the agent's own releases folder (``.lifetime-agent/``): the ids of the tasks
it ran (with their answers, until their signature expires; ``ran.jsonl``) and the latest refusals
(``refused.json``).
"""

from __future__ import annotations

import contextlib
import dataclasses
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
# Rewriting the ledger without the expired entries: not on every task.
PRUNE_EVERY_S = 300.0


def canonical_folder(path: str | os.PathLike[str]) -> str:
    """The folder as the kernel finds it: absolute, symbolic links resolved, no ``//`` or ``..``."""
    return os.path.realpath(os.path.abspath(os.fspath(path)))


@dataclasses.dataclass
class _RanFile:
    """What this process has read of a ledger's ``ran.jsonl``: its entries, and how far it read."""

    inode: int = -1
    offset: int = 0
    entries: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    pruned_at: float = dataclasses.field(default_factory=time.time)


_RAN: dict[Path, _RanFile] = {}


class Ledger:
    """The ids of the tasks this agent ran, and what it refused, under its releases folder.

    The tasks that ran are lines appended to ``ran.jsonl`` (one write each: the window's switch
    pays no file creation nor rename for it); each process keeps what it read in memory and reads
    only what was appended since, so a second agent process on the same folder sees them too.
    """

    def __init__(self, root: Path) -> None:
        self.folder = Path(root) / LEDGER
        self.ran_file = self.folder / "ran.jsonl"
        self.refusals_file = self.folder / "refused.json"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
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

    def _ran(self) -> _RanFile:
        """The entries of ``ran.jsonl``, brought up to date with what was appended since."""
        known = _RAN.setdefault(self.ran_file, _RanFile())
        try:
            with open(self.ran_file, "rb") as handle:
                inode = os.fstat(handle.fileno()).st_ino
                if inode != known.inode:  # new, or rewritten by a prune: read it all again
                    known.inode, known.offset, known.entries = inode, 0, {}
                handle.seek(known.offset)
                for line in handle:
                    if not line.endswith(b"\n"):
                        break  # being appended right now: read it next time
                    known.offset += len(line)
                    try:
                        entry = json.loads(line)
                        known.entries[entry["id"]] = entry
                    except (ValueError, KeyError, TypeError):
                        continue
        except FileNotFoundError:
            known.inode, known.offset, known.entries = -1, 0, {}
        return known

    def answer_of(self, task_id: str) -> dict[str, Any] | None:
        """The ledger's entry of the task ``task_id`` (its ``answer`` among others); None: it never ran here."""
        return self._ran().entries.get(task_id)

    def remember(self, *, task_id: str, task: str, expires_at: int, answer: Any) -> None:
        entry = {"id": task_id, "task": task, "exp": expires_at, "answer": answer}
        line = (json.dumps(entry, sort_keys=True) + "\n").encode()
        if not self.folder.is_dir():
            self.folder.mkdir(parents=True, exist_ok=True)
        # O_APPEND: one write of a whole line, whoever else appends at the same time.
        fd = os.open(self.ran_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        known = self._ran()
        now = time.time()
        if now - known.pruned_at > PRUNE_EVERY_S:
            self._prune(now)

    def _prune(self, now: float) -> None:
        # A task id only needs remembering while its signature is valid: after that the signature
        # check refuses a replay by itself. (An agent runs one task at a time: nothing is appended
        # while its own process rewrites the file.)
        with self._locked():
            known = self._ran()
            known.pruned_at = now
            live = [entry for entry in known.entries.values() if entry.get("exp", 0) >= now]
            if len(live) == len(known.entries):
                return
            temp = self.ran_file.with_name(f".ran.jsonl.tmp-{secrets.token_hex(4)}")
            temp.write_text("".join(json.dumps(entry, sort_keys=True) + "\n" for entry in live))
            os.replace(temp, self.ran_file)
            self._ran()

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
