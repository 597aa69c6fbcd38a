"""A version's hand-written SQL scripts, parsed once at registration and kept on the version.

The analysis (every statement with its parse node, actions, locks, kinds of cost, refusals, and
squawk's findings) is JSON stored on ``ApplicationVersion.script_analysis``: Prepare, the pages and
the estimate read it instead of parsing again. A statement refused by a rule refuses the bundle at
registration, and Prepare checks the kept result again (a version registered before a rule
existed is analysed then).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pglast
from pglast import parser as pg_parser

from deployments.statements.parse import RULE_SYNTAX, ParsedStatement, ScriptSyntaxError, parse_script

ANALYSIS_FORMAT = 1
# squawk rules about things the console itself takes care of: it sets lock_timeout and
# statement_timeout, runs everything in one transaction, and its own generated DDL is additive.
SQUAWK_EXCLUDED = (
    "require-lock-timeout",
    "require-statement-timeout",
    "prefer-robust-stmts",
    "transaction-nesting",
)
SQUAWK_TIMEOUT_S = 30


def parser_label() -> str:
    major, minor = pg_parser.get_postgresql_version()
    return f"pglast {pglast.__version__.lstrip('v')} (PostgreSQL {major}.{minor} parser)"


def analyse_scripts(scripts: Any, *, pg_version: str = "15") -> dict[str, Any]:
    """``scripts``: objects with ``name``, ``sha256`` and ``sql``. JSON-able analysis of each."""
    out: dict[str, Any] = {"format": ANALYSIS_FORMAT, "parser": parser_label(), "scripts": []}
    for script in scripts:
        entry: dict[str, Any] = {"name": script.name, "sha256": script.sha256, "statements": [], "error": None}
        try:
            statements = parse_script(script.sql)
        except ScriptSyntaxError as exc:
            entry["error"] = {"rule": RULE_SYNTAX, "message": exc.message, "line": exc.line}
            out["scripts"].append(entry)
            continue
        findings = squawk_findings(script.sql, pg_version=pg_version) if statements else []
        entry["statements"] = [
            {**statement.as_json(), "lint": _findings_for(statement, statements, findings)} for statement in statements
        ]
        out["scripts"].append(entry)
    return out


def _findings_for(
    statement: ParsedStatement, statements: list[ParsedStatement], findings: list[dict[str, Any]]
) -> list[dict[str, str]]:
    """squawk's findings whose line falls within this statement (up to the next one's first line)."""
    later = [s.line for s in statements if s.line > statement.line]
    end = min(later) if later else 10**9
    return [
        {"rule": f["rule"], "message": f["message"]}
        for f in findings
        if statement.line <= f["line"] < end or (f["line"] < statement.line and statement is statements[0])
    ]


def refusals(analysis: dict[str, Any]) -> list[str]:
    """One sentence per refused statement (or unparseable script): rule, script, line, statement."""
    sentences = []
    for script in analysis.get("scripts") or ():
        error = script.get("error")
        if error:
            where = f"{script['name']}, line {error['line']}" if error.get("line") else script["name"]
            sentences.append(f"{where}: rule {error['rule']}: {error['message']}.")
            continue
        for number, statement in enumerate(script.get("statements") or (), start=1):
            refused = statement.get("refused")
            if refused:
                text = " ".join(statement["sql"].split())
                text = text if len(text) <= 160 else text[:157] + "..."
                sentences.append(
                    f"{script['name']}, line {statement['line']} (statement {number}): rule {refused['rule']}: "
                    f"{refused['message']}. Statement: {text}"
                )
    return sentences


def statements_of(analysis: dict[str, Any], name: str) -> list[dict[str, Any]] | None:
    for script in analysis.get("scripts") or ():
        if script["name"] == name:
            return list(script.get("statements") or ())
    return None


def is_current(analysis: dict[str, Any] | None, scripts: Any) -> bool:
    """Whether a kept analysis covers exactly these scripts with this parser."""
    if not analysis or analysis.get("format") != ANALYSIS_FORMAT or analysis.get("parser") != parser_label():
        return False
    kept = {(s["name"], s["sha256"]) for s in analysis.get("scripts") or ()}
    return kept == {(s.name, s.sha256) for s in scripts}


# --- squawk ---------------------------------------------------------------------------------


def squawk_binary() -> str | None:
    """squawk ships its binary in the squawk-cli wheel, installed next to this interpreter."""
    beside = Path(sys.executable).parent / "squawk"
    if beside.exists():
        return str(beside)
    return shutil.which("squawk")


def squawk_findings(sql: str, *, pg_version: str = "15") -> list[dict[str, Any]]:
    """squawk's findings on ``sql`` as ``[{rule, message, line (1-based)}]``; [] when it is absent."""
    binary = squawk_binary()
    if binary is None:
        return []
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False, encoding="utf-8") as handle:
        handle.write(sql)
        path = handle.name
    try:
        completed = subprocess.run(
            [
                binary,
                "--reporter",
                "json",
                "--assume-in-transaction",
                f"--pg-version={pg_version}",
                "--exclude=" + ",".join(SQUAWK_EXCLUDED),
                path,
            ],
            capture_output=True,
            text=True,
            timeout=SQUAWK_TIMEOUT_S,
            env={**os.environ, "NO_COLOR": "1"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    finally:
        os.unlink(path)
    try:
        raw = json.loads(completed.stdout or "[]")
    except json.JSONDecodeError:
        return []
    return [
        {"rule": item.get("rule_name", ""), "message": item.get("message", ""), "line": int(item.get("line", 0)) + 1}
        for item in raw
        if isinstance(item, dict)
    ]
