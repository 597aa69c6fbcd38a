"""Byte-compile a share of an application's sources: run as a separate process by the compile step.

Standard library only, and run as a script rather than through the console's packages, so that it
starts fast and behaves the same inside a Celery worker (whose pool processes may not fork their
own multiprocessing children) and on the command line.

    python bytecode.py OUT_ROOT < frames: b"<relative path>\\n<size>\\n" then <size> bytes of source

The sources come through stdin, never through a temporary folder: writing thousands of files to
compile them cost as much as a third of the compile. For each path it writes OUT_ROOT/<path>c and
prints ``ok`` or ``error {json}`` on its own line.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from importlib import _bootstrap_external  # type: ignore[attr-defined]
from pathlib import Path


def compile_source(source: bytes, out_root: Path, relative: str, made: set[Path]) -> dict | None:
    """Compile one module to an unchecked-hash pyc; return the error as a dict, or None.

    The same bytes as ``py_compile.compile(..., dfile=f"src/{relative}",
    invalidation_mode=UNCHECKED_HASH)``: the pyc holds a hash of the source instead of its mtime, so
    the same source gives the same bytes whenever and wherever it is compiled, and the file name
    inside tracebacks is the bundle path."""
    name = f"src/{relative}"
    try:
        code = compile(source, name, "exec", dont_inherit=True)
    except Exception as exc:  # noqa: BLE001 - what py_compile reports as PyCompileError
        line = getattr(exc, "lineno", None)
        message = getattr(exc, "msg", None) or str(exc)
        return {"file": name, "line": line, "message": message}
    data = _bootstrap_external._code_to_hash_pyc(code, importlib.util.source_hash(source), False)
    target = out_root / (relative + "c")
    if target.parent not in made:
        target.parent.mkdir(parents=True, exist_ok=True)
        made.add(target.parent)
    target.write_bytes(data)
    return None


def main() -> None:
    out_root = Path(sys.argv[1])
    stdin = sys.stdin.buffer
    made: set[Path] = set()
    count = 0
    while True:
        header = stdin.readline()
        if not header:
            break
        relative = header.decode().rstrip("\n")
        size = int(stdin.readline())
        source = stdin.read(size)
        count += 1
        error = compile_source(source, out_root, relative, made)
        print("ok" if error is None else "error " + json.dumps(error))
        # Flushed in batches: the parent turns these lines into a progress bar.
        if count % 50 == 0:
            sys.stdout.flush()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
