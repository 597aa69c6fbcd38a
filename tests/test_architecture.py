"""The architecture holds: imports point one way (import-linter's contracts in pyproject.toml), and
no state of a plan, a stage or a step is spelled outside the state module — services, pages,
templates and raw SQL ask the state module's questions instead."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from deployments.state.machine import ApiInfo, ApiStatus, PlanState, StageState, StepState

REPO = Path(__file__).resolve().parent.parent
STATE_MODULE = REPO / "deployments" / "state"
WORDS = sorted({*PlanState.values, *StageState.values, *StepState.values, *ApiStatus.values, *ApiInfo.values})
WORD = "|".join(WORDS)
# A state spelled where it decides something: compared, filtered on, or in SQL.
PYTHON_SPELLINGS = [
    re.compile(rf"""(==|!=|\bin|\bnot in)\s*[\[({{]?\s*(['"])({WORD})\2"""),
    re.compile(rf"""\b(state|status|info|to_state|from_state)(__in|__exact)?\s*=\s*[\[({{]?\s*(['"])({WORD})\3"""),
    re.compile(rf"""\b(state|status)\s*(=|<>|!=|in)\s*\(?\s*'({WORD})'"""),  # raw SQL
]
TEMPLATE_SPELLINGS = [
    re.compile(rf"""(==|!=)\s*(['"])({WORD})\2"""),
    re.compile(r"""(?<!filters)\.(status|info|state)\s*(==|!=)"""),
]
# Sets of states written out by hand: the state module names them (HOLDING, WAITING, …).
STATE_SET = re.compile(
    r"[\[({]\s*(P|S|T|PlanState|StageState|StepState)\.[A-Z_]+\s*,\s*(P|S|T|PlanState|StageState|StepState)\.[A-Z_]+"
)


def _sources(*roots: str, suffix: str) -> list[Path]:
    files = []
    for root in roots:
        for path in (REPO / root).rglob(f"*{suffix}"):
            if "migrations" in path.parts or STATE_MODULE in path.parents:
                continue
            files.append(path)
    return files


def test_no_state_is_spelled_outside_the_state_module():
    found = []
    for path in _sources("lifetime", "core", "environments", "deployments", suffix=".py"):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if any(p.search(line) for p in PYTHON_SPELLINGS) or STATE_SET.search(line):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    for path in _sources("templates", suffix=".html"):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if any(p.search(line) for p in TEMPLATE_SPELLINGS):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:160]}")
    assert not found, "states spelled outside deployments/state/:\n" + "\n".join(found)


def test_imports_point_one_way_without_cycles():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
