"""Front-end releases folders and queues: one canonical spelling, never shared across environments.

A folder is compared in its canonical form: absolute, no ``.`` or empty parts (``//``), no ``..``,
and with the symbolic links of the console's host resolved, so that ``//srv/prod``,
``/srv/./prod/`` and ``/proc/self/root/srv/prod`` are all ``/srv/prod``. No front-end's folder may
equal, contain or lie inside another front-end's folder, in any environment. The check creates
nothing and its message is the same whatever exists, so the form cannot be used to explore the
console's disk. (The agent makes its own folder, and refuses any other: agent.guard.)
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable

from django.utils.text import slugify

# Kernel interfaces and the system's own folders: a release never goes there.
SYSTEM_FOLDERS = (
    "/proc",
    "/sys",
    "/dev",
    "/run",
    "/var/run",
    "/boot",
    "/etc",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/usr",
)
IN_USE = (
    "This releases folder cannot be used: it is, contains or lies inside a system folder or the folder of "
    "another front-end. Choose a folder of its own for this front-end."
)
QUEUE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,79}$")


class FolderRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def canonical(path: str) -> str:
    """The lexical canonical form of a folder a person typed; FolderRefused when it cannot be one."""
    path = (path or "").strip()
    if not path:
        raise FolderRefused("Enter the releases folder.")
    if any(ord(ch) < 32 or ch == "\x7f" for ch in path) or "\\" in path:
        raise FolderRefused("The releases folder may not hold control characters or backslashes.")
    if not path.startswith("/"):
        raise FolderRefused("The releases folder must be an absolute path (starting with /).")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise FolderRefused("The releases folder must be written without '..'.")
    if not parts:
        raise FolderRefused(IN_USE)
    return "/" + "/".join(parts)


def resolved(path: str) -> str:
    """``path`` with the symbolic links of this host resolved (nothing is created or required to exist).
    A path this host may not resolve is compared as written: the agent resolves it on its own host."""
    try:
        return os.path.realpath(path)
    except OSError:
        return path


def _overlap(first: str, second: str) -> bool:
    return first == second or first.startswith(second.rstrip("/") + "/") or second.startswith(first.rstrip("/") + "/")


def _forms(path: str) -> set[str]:
    try:
        lexical = canonical(path)
    except FolderRefused:
        lexical = posixpath.normpath(path or "/")
    return {lexical, resolved(lexical)}


def _system(path: str) -> bool:
    return any(path == system or path.startswith(system + "/") for system in SYSTEM_FOLDERS)


def check_folder(path: str, *, others: Iterable[str]) -> str:
    """The canonical form of ``path`` to store, once it is clear of system folders and of ``others``
    (the folders of every other front-end). FolderRefused otherwise, with one message for every
    conflict, whichever it is."""
    lexical = canonical(path)
    mine = {lexical}
    if not _system(lexical):
        mine.add(resolved(lexical))
    for form in mine:
        if _system(form):
            raise FolderRefused(IN_USE)
    for other in others:
        if any(_overlap(form, theirs) for form in mine for theirs in _forms(other)):
            raise FolderRefused(IN_USE)
    return lexical


def queue_prefix(environment_name: str) -> str:
    return f"frontend.{slugify(environment_name)}."


def check_queue(queue: str, *, environment_name: str) -> str:
    """A front-end's queue is ``frontend.<environment>.<name>``: the form its agents use, so that the
    broker's access rules can give each environment's hosts their own queues only."""
    prefix = queue_prefix(environment_name)
    rest = queue[len(prefix) :] if queue.startswith(prefix) else ""
    if not QUEUE_NAME_RE.match(rest):
        raise FolderRefused(
            f"A queue of {environment_name} is named {prefix}<name>, the name in lower-case letters, digits, "
            "'-' and '_'."
        )
    return queue
