"""Build the example application bundles.

    python -m examples.build OUT_DIR [--modules N]

Each example lives in ``examples/<app>/``: ``src/`` (shared by its versions), and per version
``versions/<version>/lifetime.toml`` plus the ``sql/`` scripts that version introduces (a version's
bundle carries the scripts of every version up to it, as a real repository would). HR Core also
gets ``--modules`` generated modules (default 9000: its compile then takes tens of seconds on two
cores). Archives are deterministic: the same sources give the same bytes.
"""

from __future__ import annotations

import argparse
import gzip
import io
import sys
import tarfile
import zipfile
from pathlib import Path

from examples.generate_modules import generate_modules

ROOT = Path(__file__).resolve().parent
DEFAULT_MODULES = 9000
# One example per archive format, so that the demo exercises both readers.
FORMATS = {"hr_core": "tar.gz", "leave_portal": "zip", "field_inspector": "tar.gz"}


def applications() -> dict[str, list[str]]:
    """``{application: [versions, oldest first]}``."""
    from packaging.version import Version

    found = {}
    for app in sorted(FORMATS):
        versions = [p.name for p in (ROOT / app / "versions").iterdir() if (p / "lifetime.toml").is_file()]
        found[app] = sorted(versions, key=Version)
    return found


def bundle_files(app: str, version: str, *, modules: int = DEFAULT_MODULES) -> dict[str, bytes]:
    """Every member of the bundle of ``app`` ``version``: ``{path: bytes}``."""
    from packaging.version import Version

    base = ROOT / app
    files: dict[str, bytes] = {"lifetime.toml": (base / "versions" / version / "lifetime.toml").read_bytes()}
    for earlier in applications()[app]:
        if Version(earlier) <= Version(version):
            for script in sorted((base / "versions" / earlier / "sql").glob("*.sql")):
                files[f"sql/{script.name}"] = script.read_bytes()
    for path in sorted((base / "src").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            files[f"src/{path.relative_to(base / 'src').as_posix()}"] = path.read_bytes()
    files[f"src/{app}/release_info.py"] = f'NAME = "{app}"\nVERSION = "{version}"\n'.encode()
    if app == "hr_core":
        for path, source in generate_modules(modules, version=version).items():
            files[f"src/{path}"] = source.encode()
    return files


def pack(files: dict[str, bytes], fmt: str) -> bytes:
    """A deterministic archive: sorted members, fixed times, owners and modes."""
    buffer = io.BytesIO()
    if fmt == "zip":
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in sorted(files):
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o100644 << 16
                info.create_system = 3
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, files[name])
        return buffer.getvalue()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as archive:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            info.mtime = 0
            archive.addfile(info, io.BytesIO(files[name]))
    return buffer.getvalue()


def build_bundle(app: str, version: str, *, modules: int = DEFAULT_MODULES, fmt: str | None = None) -> bytes:
    return pack(bundle_files(app, version, modules=modules), fmt or FORMATS[app])


def build_examples(out_dir: Path, *, modules: int = DEFAULT_MODULES) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for app, versions in applications().items():
        for version in versions:
            path = out_dir / f"{app}-{version}.{FORMATS[app]}"
            path.write_bytes(build_bundle(app, version, modules=modules))
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--modules", type=int, default=DEFAULT_MODULES, help="generated modules in hr_core")
    args = parser.parse_args(argv)
    for path in build_examples(args.out_dir, modules=args.modules):
        print(f"{path}  {path.stat().st_size} bytes")


if __name__ == "__main__":
    sys.exit(main())
