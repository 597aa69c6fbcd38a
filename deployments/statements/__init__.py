"""Hand-written SQL scripts split and classified: the older names, kept for their callers.

Everything is done by PostgreSQL's own parser in ``deployments.statements.parse``; this module
only keeps the small interface (``split_script``, ``classify``) and the flag names. sqlparse is no
longer used to split or classify (it only formats SQL for display).
"""

from __future__ import annotations

import dataclasses

from deployments.statements.parse import (
    BLOCKS_WRITES,
    DESTRUCTIVE,
    FLAG_LABELS,
    LOCK_HEAVY,
    REWRITES_TABLE,
    SCANS_TABLE,
    TOUCHES_ROWS,
    ParsedStatement,
    ScriptSyntaxError,
    classify_one,
    split_statements,
)

__all__ = [
    "BLOCKS_WRITES",
    "DESTRUCTIVE",
    "FLAG_LABELS",
    "LOCK_HEAVY",
    "REWRITES_TABLE",
    "SCANS_TABLE",
    "TOUCHES_ROWS",
    "Classification",
    "ScriptStatement",
    "ScriptSyntaxError",
    "classify",
    "split_script",
]


@dataclasses.dataclass(frozen=True)
class ScriptStatement:
    sql: str
    line: int  # 1-based line of the statement's first character in its script


@dataclasses.dataclass(frozen=True)
class Classification:
    kind: str
    flags: tuple[str, ...]
    refused: str | None = None  # "rule: why", when it can never run in the deployment transaction
    parsed: ParsedStatement | None = None


def split_script(text: str) -> list[ScriptStatement]:
    """The statements of ``text`` as the server splits them (ScriptSyntaxError if it cannot parse)."""
    return [ScriptStatement(sql=sql, line=line) for sql, line in split_statements(text)]


def classify(statement: str) -> Classification:
    statements = split_statements(statement)
    if not statements:
        return Classification(kind="empty", flags=())
    parsed = classify_one(statements[0][0], line=1)
    refused = f"{parsed.refused.rule}: {parsed.refused.message}" if parsed.refused else None
    return Classification(kind=parsed.kind, flags=parsed.flags, refused=refused, parsed=parsed)
