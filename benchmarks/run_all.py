"""``make bench``: run the benchmarks of this folder and print one table of their targets.

    LIFETIME_DEV=true .venv/bin/python benchmarks/run_all.py [--only switch,continue] [--skip window_sql] \\
        [--quick] [--write-readme]

Each benchmark runs as its own process with real PostgreSQL (``DATABASE_URL``), Redis
(``REDIS_URL``), agents, stage workers and front-end servers as it needs them, and reports its rows
through ``benchmarks/report.py``: what, target, the floor measured in the same run, measured,
ratio, met or missed. The machine's load average is taken before each benchmark: on a shared
machine the numbers are only as good as the load beside them. ``--write-readme`` puts the table,
the machine and the loads between the markers of ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from report import table  # noqa: E402

BEGIN, END = "<!-- make bench: begin -->", "<!-- make bench: end -->"


@dataclasses.dataclass(frozen=True)
class Benchmark:
    name: str
    script: str
    args: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()  # arguments for --quick: fewer rounds, smaller data
    needs: str = ""  # a program that must be installed


BENCHMARKS = [
    Benchmark("continue", "bench_continue.py", ("--rounds", "40"), ("--rounds", "10")),
    Benchmark("continue_nosql", "bench_continue_nosql.py", ("--rounds", "5"), ("--rounds", "2")),
    Benchmark("switch", "bench_switch.py", ("--rounds", "100"), ("--rounds", "20")),
    Benchmark("compile_sql", "bench_compile_sql.py", (), ("--modules", "3000")),
    Benchmark("upload", "bench_upload.py", ("--rounds", "5"), ("--rounds", "2")),
    Benchmark("status_pages", "bench_status_pages.py", ("--seconds", "60"), ("--seconds", "30"), needs="wrk"),
    Benchmark("agent_signing", "bench_agent_signing.py"),
    Benchmark("hostile_uploads", "bench_hostile_uploads.py", ("--stdlib-timeout", "60"), ("--stdlib-timeout", "5")),
    Benchmark("metrics", "bench_metrics.py"),
    Benchmark("window_ratio", "bench_window_ratio.py", ("--runs", "5"), ("--runs", "2", "--modules", "3000")),
    Benchmark("window_sql", "bench_window_sql.py", (), ("--rows", "1000000")),
]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} cores ({cpu}){memory}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def run(bench: Benchmark, *, quick: bool, report: Path, logs: Path) -> tuple[int, float, str]:
    args = [sys.executable, str(HERE / bench.script), *(bench.quick if quick else bench.args)]
    env = {**os.environ, "BENCH_REPORT": str(report), "LIFETIME_DEV": os.environ.get("LIFETIME_DEV", "true")}
    log = logs / f"{bench.name}.log"
    started = time.monotonic()
    with open(log, "w") as out:
        code = subprocess.run(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    return code, time.monotonic() - started, str(log)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="comma-separated names: " + ",".join(b.name for b in BENCHMARKS))
    parser.add_argument("--skip", default="", help="comma-separated names to leave out")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and smaller data")
    parser.add_argument("--write-readme", action="store_true")
    options = parser.parse_args()
    only = {n for n in options.only.split(",") if n}
    skip = {n for n in options.skip.split(",") if n}
    logs = Path(tempfile.mkdtemp(prefix="lifetime-bench-"))
    report = logs / "rows.jsonl"
    report.touch()
    runs = []
    for bench in BENCHMARKS:
        if (only and bench.name not in only) or bench.name in skip:
            continue
        if bench.needs and not _installed(bench.needs):
            print(f"-- {bench.name}: skipped, {bench.needs} is not installed", flush=True)
            runs.append((bench.name, "-", 0.0, f"skipped: {bench.needs} not installed"))
            continue
        before = load()
        print(f"-- {bench.name} (load average {before})", flush=True)
        code, seconds, log = run(bench, quick=options.quick, report=report, logs=logs)
        runs.append((bench.name, before, seconds, "ok" if code == 0 else f"exit {code}, see {log}"))
        print(f"   {seconds:.0f} s, {'ok' if code == 0 else f'exit {code}'} ({log})", flush=True)
    rows = [json.loads(line) for line in report.read_text().splitlines() if line.strip()]
    runs_table = "\n".join(
        ["| benchmark | load average before (1, 5, 15 min) | seconds | outcome |", "|---|---|---:|---|"]
        + [f"| {name} | {before} | {seconds:.0f} | {outcome} |" for name, before, seconds, outcome in runs]
    )
    text = (
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}{' (--quick)' if options.quick else ''} "
        f"on {machine()}.\n\n{table(rows)}\n\n{runs_table}\n"
    )
    print()
    print(text)
    if options.write_readme and (only or options.quick):
        print("benchmarks/README.md keeps the table of full runs: not written for --only or --quick")
    elif options.write_readme:
        readme = HERE / "README.md"
        content = readme.read_text()
        if BEGIN in content and END in content:
            head, rest = content.split(BEGIN, 1)
            _, tail = rest.split(END, 1)
            readme.write_text(f"{head}{BEGIN}\n{text}{END}{tail}")
        else:
            print(f"{readme} has no {BEGIN} marker: not written", file=sys.stderr)
    if any(not code.startswith(("ok", "skipped")) for *_, code in runs):
        raise SystemExit(1)


def _installed(program: str) -> bool:
    from shutil import which

    return which(program) is not None


if __name__ == "__main__":
    main()
