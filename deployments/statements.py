"""Hand-written SQL scripts: split into statements and classify them, with sqlparse.

sqlparse's lexer knows dollar-quoted bodies (``$$ ... $$``, ``$tag$ ... $tag$``), quoted
identifiers and strings, and comments, so a ``;`` inside any of them does not end a statement.
Classification reads only keywords outside strings and comments.
"""

from __future__ import annotations

import dataclasses

import sqlparse
from sqlparse import tokens as T

# Flags shown next to a statement (and counted in warnings) so that a release manager sees what
# will hurt inside the window.
LOCK_HEAVY = "lock_heavy"  # ACCESS EXCLUSIVE on an existing table, however briefly
BLOCKS_WRITES = "blocks_writes"  # a SHARE lock held while an index builds
REWRITES_TABLE = "rewrites_table"  # the table is copied: time grows with its size
DESTRUCTIVE = "destructive"  # removes data or objects the running version may still use
TOUCHES_ROWS = "touches_rows"  # changes data, not only the schema
FLAG_LABELS = {
    LOCK_HEAVY: "takes a heavy lock",
    BLOCKS_WRITES: "blocks writes while it runs",
    REWRITES_TABLE: "rewrites the table",
    DESTRUCTIVE: "drops or deletes",
    TOUCHES_ROWS: "changes rows",
}

TRANSACTION_CONTROL = {"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE", "PREPARE"}


@dataclasses.dataclass(frozen=True)
class ScriptStatement:
    sql: str
    line: int  # 1-based line of the statement's first character in its script


@dataclasses.dataclass(frozen=True)
class Classification:
    kind: str  # the statement's first keyword(s), lowercase: "create index", "insert", "do", ...
    flags: tuple[str, ...]
    refused: str | None = None  # why it can never run inside the deployment transaction


def split_script(text: str) -> list[ScriptStatement]:
    """The statements of ``text`` in order, without the empty ones (whitespace, comments, ``;;``)."""
    statements = []
    cursor = 0
    for raw in sqlparse.split(text, strip_semicolon=False):
        start = text.find(raw, cursor)
        if start < 0:  # sqlparse normalised something: keep going without a line number
            start = cursor
        else:
            cursor = start + len(raw)
        # sqlparse attaches leading comments to the statement that follows them: the statement's
        # line is that of its first keyword, which is what people look for in their file.
        offset = None
        position = 0
        for token in _flat(raw):
            if _is_meaningful(token):
                offset = position
                break
            position += len(token.value)
        if offset is None:
            continue
        line = text.count("\n", 0, start + offset) + 1
        statements.append(ScriptStatement(sql=raw.strip(), line=line))
    return statements


def _flat(statement: str) -> list:
    parsed = sqlparse.parse(statement)
    return list(parsed[0].flatten()) if parsed else []


def _is_meaningful(token) -> bool:
    return not token.is_whitespace and token.ttype not in T.Comment and token.value != ";"


def _meaningful_tokens(statement: str) -> list:
    return [token for token in _flat(statement) if _is_meaningful(token)]


def _words(statement: str) -> list[str]:
    """Upper-cased keywords and names outside strings, quoted identifiers and comments."""
    words = []
    for token in _meaningful_tokens(statement):
        if (
            token.ttype in T.Keyword
            or token.ttype in T.Name
            or token.ttype in T.Keyword.DDL
            or token.ttype in T.Keyword.DML
        ):
            words.append(token.value.upper())
        elif token.ttype in T.String or token.ttype in T.Literal:
            words.append("'")
        elif token.ttype in T.Punctuation:
            words.append(token.value)
        else:
            words.append(token.value.upper())
    # sqlparse keeps some multi-word keywords as one token ("ORDER BY", "IF NOT EXISTS"): split them.
    return [part for word in words for part in word.split()]


def classify(statement: str) -> Classification:
    words = _words(statement)
    if not words:
        return Classification(kind="empty", flags=())
    first = words[0]
    kind = first.lower()
    if first in {"CREATE", "ALTER", "DROP"}:
        rest = [w for w in words[1:4] if w not in {"OR", "REPLACE", "UNIQUE", "TEMP", "TEMPORARY", "MATERIALIZED"}]
        kind = f"{kind} {rest[0].lower()}" if rest else kind
    if first.startswith("\\"):
        return Classification(kind="psql", flags=(), refused="psql meta-commands (\\...) are not SQL")
    if first in TRANSACTION_CONTROL:
        if first == "PREPARE" and (len(words) < 2 or words[1] != "TRANSACTION"):
            pass  # PREPARE name AS ...: a prepared statement, harmless
        else:
            return Classification(
                kind=kind,
                flags=(),
                refused=f"explicit transaction control ({first}) is not allowed: the console runs all the "
                "scripts of a deployment in one transaction and commits or rolls it back itself",
            )
    word_set = set(words)
    if "CONCURRENTLY" in word_set and first in {"CREATE", "DROP", "REINDEX", "REFRESH"}:
        return Classification(
            kind=kind,
            flags=(),
            refused=f"{' '.join(words[: words.index('CONCURRENTLY') + 1])} cannot run inside a transaction; "
            "use the non-concurrent form (it blocks writes while it runs) or run it outside a deployment",
        )
    if first == "VACUUM" or (
        first in {"CREATE", "DROP"} and len(words) > 1 and words[1] in {"DATABASE", "TABLESPACE", "SUBSCRIPTION"}
    ):
        what = "VACUUM" if first == "VACUUM" else " ".join(words[:2])
        return Classification(kind=kind, flags=(), refused=f"{what} cannot run inside a transaction")
    if first == "ALTER" and len(words) > 1 and words[1] == "SYSTEM":
        return Classification(kind=kind, flags=(), refused="ALTER SYSTEM cannot run inside a transaction")
    if first == "COPY" and ("STDIN" in word_set or "STDOUT" in word_set):
        return Classification(kind=kind, flags=(), refused="COPY from STDIN / to STDOUT needs a client; use INSERT")
    if first == "CLUSTER" and len(words) == 1:
        return Classification(kind=kind, flags=(), refused="CLUSTER of every table cannot run inside a transaction")

    flags: list[str] = []
    if first == "ALTER" and len(words) > 1 and words[1] == "TABLE":
        flags.append(LOCK_HEAVY)
        if "TYPE" in word_set:
            flags.append(REWRITES_TABLE)
        if "DROP" in words[2:]:
            flags.append(DESTRUCTIVE)
        if "LOGGED" in word_set or "UNLOGGED" in word_set:
            flags.append(REWRITES_TABLE)
    elif first == "CREATE" and ("INDEX" in words[1:3]):
        flags.append(BLOCKS_WRITES)
    elif first in {"DROP", "TRUNCATE"}:
        flags += [LOCK_HEAVY, DESTRUCTIVE]
    elif first in {"LOCK", "REINDEX"}:
        flags.append(LOCK_HEAVY)
    elif first == "CLUSTER":
        flags += [LOCK_HEAVY, REWRITES_TABLE]
    elif first in {"INSERT", "UPDATE", "DELETE", "MERGE"}:
        flags.append(TOUCHES_ROWS)
        if first == "DELETE" and "WHERE" not in word_set:
            flags.append(DESTRUCTIVE)
    return Classification(kind=kind, flags=tuple(dict.fromkeys(flags)))
