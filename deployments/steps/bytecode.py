"""Byte-compile a share of an application's sources: run as a separate process by the compile step.

Standard library only, and run as a script rather than through the console's packages, so that it
starts fast and behaves the same inside a Celery worker (whose pool processes may not fork their
own multiprocessing children) and on the command line.

    python bytecode.py SRC_ROOT OUT_ROOT < relative paths, one per line

For each path it writes OUT_ROOT/<path>c and prints ``ok`` or ``error {json}`` on its own line.
"""

from __future__ import annotations

import json
import py_compile
import sys
from pathlib import Path


def compile_one(src_root: Path, out_root: Path, relative: str) -> dict | None:
    """Compile one module to a hash-checked-never pyc; return the error as a dict, or None."""
    target = out_root / (relative + "c")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        # UNCHECKED_HASH: the pyc holds a hash of the source instead of its mtime, so the same
        # source gives the same bytes whenever and wherever it is compiled. dfile fixes the file
        # name inside tracebacks to the bundle path, not this temporary folder.
        py_compile.compile(
            str(src_root / relative),
            cfile=str(target),
            dfile=f"src/{relative}",
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
    except py_compile.PyCompileError as exc:
        inner = exc.exc_value
        line = getattr(inner, "lineno", None)
        message = getattr(inner, "msg", None) or str(inner)
        return {"file": f"src/{relative}", "line": line, "message": message}
    return None


def main() -> None:
    src_root, out_root = Path(sys.argv[1]), Path(sys.argv[2])
    for count, raw in enumerate(sys.stdin, start=1):
        relative = raw.rstrip("\n")
        if not relative:
            continue
        error = compile_one(src_root, out_root, relative)
        print("ok" if error is None else "error " + json.dumps(error))
        # Flushed in batches: the parent turns these lines into a progress bar.
        if count % 50 == 0:
            sys.stdout.flush()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
