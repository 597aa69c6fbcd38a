"""SQL split, classified and checked by PostgreSQL's own parser (pglast, the bindings of libpg_query).

A tokenizer that is not PostgreSQL's lexer splits some scripts differently from the server: nested
``/* /* */ */`` comments, ``E'\\''`` strings, backslashes in standard strings, dollar quotes with
tags. Here the statements and their places come from the parser itself (``stmt_location`` and
``stmt_len``), so each statement sent with its own ``execute()`` is exactly one of the server's.

Every statement gets:

- its parse node and, for ``ALTER TABLE``, each sub-command;
- the lock it takes on the table it changes and whether that blocks reads or writes;
- its kind of cost (catalog only, table rewrite, index build, full scan, data change), which the
  estimate (``steps/sql_estimate.py``) turns into seconds from the table's size;
- a refusal with a named rule when it can never run in the deployment's transaction or reaches
  outside the database or the session.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import Any

from pglast import parser as pg_parser

# --- flags shown next to a statement --------------------------------------------------------
LOCK_HEAVY = "lock_heavy"  # ACCESS EXCLUSIVE on an existing table, however briefly
BLOCKS_WRITES = "blocks_writes"  # a SHARE lock held while an index builds or a constraint is checked
REWRITES_TABLE = "rewrites_table"  # the table is copied: time grows with its size
SCANS_TABLE = "scans_table"  # every row is read under the statement's lock (validate, SET NOT NULL)
DESTRUCTIVE = "destructive"  # removes data or objects the running version may still use
TOUCHES_ROWS = "touches_rows"  # changes data, not only the schema
FLAG_LABELS = {
    LOCK_HEAVY: "takes a heavy lock",
    BLOCKS_WRITES: "blocks writes while it runs",
    REWRITES_TABLE: "rewrites the table",
    SCANS_TABLE: "reads the whole table under its lock",
    DESTRUCTIVE: "drops or deletes",
    TOUCHES_ROWS: "changes rows",
}

# --- kinds of cost --------------------------------------------------------------------------
CATALOG = "catalog"  # only the catalog changes: milliseconds, whatever the size (once the lock is had)
REWRITE = "rewrite"  # the table and its indexes are written again
INDEX_BUILD = "index_build"  # the table is read and sorted, the index written
SCAN = "scan"  # the table is read (validate a constraint, SET NOT NULL)
DATA_CHANGE = "data_change"  # rows are inserted, updated or deleted
COST_LABELS = {
    CATALOG: "catalog only",
    REWRITE: "table rewrite",
    INDEX_BUILD: "index build",
    SCAN: "full scan",
    DATA_CHANGE: "data change",
}

# --- locks ----------------------------------------------------------------------------------
ACCESS_EXCLUSIVE = "ACCESS EXCLUSIVE"
EXCLUSIVE = "EXCLUSIVE"
SHARE_ROW_EXCLUSIVE = "SHARE ROW EXCLUSIVE"
SHARE = "SHARE"
SHARE_UPDATE_EXCLUSIVE = "SHARE UPDATE EXCLUSIVE"
ROW_EXCLUSIVE = "ROW EXCLUSIVE"
NO_LOCK = ""
_LOCK_RANK = {
    NO_LOCK: 0,
    ROW_EXCLUSIVE: 1,
    SHARE_UPDATE_EXCLUSIVE: 2,
    SHARE: 3,
    SHARE_ROW_EXCLUSIVE: 4,
    EXCLUSIVE: 5,
    ACCESS_EXCLUSIVE: 6,
}


def blocks(lock: str) -> str:
    """What other sessions cannot do on the table while ``lock`` is held: 'reads and writes',
    'writes' or ''. ROW EXCLUSIVE only conflicts with writers of the same rows: not counted."""
    if lock == ACCESS_EXCLUSIVE:
        return "reads and writes"
    if lock in (EXCLUSIVE, SHARE_ROW_EXCLUSIVE, SHARE):
        return "writes"
    return ""


# --- rules ----------------------------------------------------------------------------------
RULE_TRANSACTION_CONTROL = "transaction-control"
RULE_NOT_IN_TRANSACTION = "not-in-transaction"
RULE_COPY_FILE_OR_PROGRAM = "copy-file-or-program"
RULE_COPY_NEEDS_CLIENT = "copy-needs-client"
RULE_SERVER_FILES = "server-files"
RULE_LARGE_OBJECT_FILES = "large-object-files"
RULE_FOREIGN_DATA = "foreign-data"
RULE_ALTER_SYSTEM = "alter-system"
RULE_ROLES = "roles"
RULE_SESSION_SETTINGS = "session-settings"
RULE_OTHER_BACKENDS = "other-backends"
RULE_SERVER_ADMIN = "server-administration"
RULE_UNTRUSTED_CODE = "untrusted-code"
RULE_PSQL = "psql-meta-command"
RULE_SYNTAX = "syntax"
RULES = {
    RULE_TRANSACTION_CONTROL: "transaction control: the console runs all of a plan's SQL in one transaction and "
    "commits or rolls it back itself",
    RULE_NOT_IN_TRANSACTION: "cannot run inside a transaction",
    RULE_COPY_FILE_OR_PROGRAM: "COPY to or from a file or a program runs on the database server's host",
    RULE_COPY_NEEDS_CLIENT: "COPY from STDIN / to STDOUT needs a client that streams the data; use INSERT",
    RULE_SERVER_FILES: "reads or writes files on the database server's host",
    RULE_LARGE_OBJECT_FILES: "large-object import/export reads or writes files on the database server's host",
    RULE_FOREIGN_DATA: "reaches other databases or servers (dblink, foreign data wrappers)",
    RULE_ALTER_SYSTEM: "ALTER SYSTEM changes the server's configuration",
    RULE_ROLES: "creates, changes or switches roles",
    RULE_SESSION_SETTINGS: "changes a setting the console owns during a deployment",
    RULE_OTHER_BACKENDS: "terminates, cancels or signals other sessions",
    RULE_SERVER_ADMIN: "acts on the whole server",
    RULE_UNTRUSTED_CODE: "runs code outside the database (C or an untrusted language)",
    RULE_PSQL: "psql meta-commands (\\...) are not SQL",
    RULE_SYNTAX: "PostgreSQL's parser rejects it",
}

# Functions that reach files, other servers or other sessions, by their (unqualified) name.
FORBIDDEN_FUNCTIONS = {
    **dict.fromkeys(
        (
            "pg_read_file",
            "pg_read_binary_file",
            "pg_ls_dir",
            "pg_stat_file",
            "pg_ls_logdir",
            "pg_ls_waldir",
            "pg_ls_tmpdir",
            "pg_ls_archive_statusdir",
            "pg_ls_logicalsnapdir",
            "pg_ls_logicalmapdir",
            "pg_ls_replslotdir",
            "pg_file_write",
            "pg_file_rename",
            "pg_file_unlink",
            "pg_file_sync",
            "pg_logdir_ls",
        ),
        RULE_SERVER_FILES,
    ),
    **dict.fromkeys(("lo_import", "lo_export"), RULE_LARGE_OBJECT_FILES),
    **dict.fromkeys(
        (
            "dblink",
            "dblink_exec",
            "dblink_connect",
            "dblink_connect_u",
            "dblink_open",
            "dblink_fetch",
            "dblink_send_query",
            "dblink_get_result",
        ),
        RULE_FOREIGN_DATA,
    ),
    **dict.fromkeys(("pg_terminate_backend", "pg_cancel_backend", "pg_signal_backend"), RULE_OTHER_BACKENDS),
    **dict.fromkeys(
        (
            "pg_reload_conf",
            "pg_rotate_logfile",
            "pg_promote",
            "pg_switch_wal",
            "pg_create_restore_point",
            "pg_backup_start",
            "pg_backup_stop",
            "pg_start_backup",
            "pg_stop_backup",
            "pg_create_physical_replication_slot",
            "pg_create_logical_replication_slot",
            "pg_drop_replication_slot",
            "pg_log_backend_memory_contexts",
        ),
        RULE_SERVER_ADMIN,
    ),
}
# set_config('role', ...) and friends switch the session's identity or the console's limits.
ROLE_SETTINGS = {"role", "session_authorization"}
CONSOLE_SETTINGS = {
    "lock_timeout",
    "statement_timeout",
    "idle_in_transaction_session_timeout",
    "transaction_timeout",
    "session_replication_role",
    "default_transaction_read_only",
    "transaction_read_only",
}
OUTSIDE_EXTENSIONS = {
    "dblink": RULE_FOREIGN_DATA,
    "postgres_fdw": RULE_FOREIGN_DATA,
    "file_fdw": RULE_SERVER_FILES,
    "adminpack": RULE_SERVER_FILES,
    "plpython3u": RULE_UNTRUSTED_CODE,
    "plperlu": RULE_UNTRUSTED_CODE,
    "pltclu": RULE_UNTRUSTED_CODE,
}
UNTRUSTED_LANGUAGES = {"c", "internal", "plpython3u", "plpythonu", "plpython2u", "plperlu", "pltclu", "plsh"}
VOLATILE_FUNCTIONS = {
    "random",
    "gen_random_uuid",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
    "clock_timestamp",
    "timeofday",
    "nextval",
    "random_normal",
    "txid_current",
}


@dataclasses.dataclass(frozen=True)
class Refusal:
    rule: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"rule": self.rule, "message": self.message}


@dataclasses.dataclass(frozen=True)
class Action:
    """One change a statement makes to one table (each ALTER TABLE sub-command is one)."""

    what: str  # "add column", "alter column type", "create index", "add foreign key", "update", ...
    table: str  # schema.table as written (schema may be empty)
    lock: str
    cost: str
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"what": self.what, "table": self.table, "lock": self.lock, "cost": self.cost, "detail": self.detail}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Action:
        return cls(
            what=data["what"],
            table=data["table"],
            lock=data["lock"],
            cost=data["cost"],
            detail=dict(data.get("detail") or {}),
        )


@dataclasses.dataclass(frozen=True)
class ParsedStatement:
    sql: str  # exactly the server's statement, without its terminating semicolon
    line: int  # 1-based line of its first character in the script
    node: str  # parse node, e.g. "AlterTableStmt"
    kind: str  # lowercase words people read: "alter table", "create index", "insert", "do", ...
    actions: tuple[Action, ...] = ()
    flags: tuple[str, ...] = ()
    refused: Refusal | None = None

    @property
    def lock(self) -> str:
        return max((a.lock for a in self.actions), key=_LOCK_RANK.__getitem__, default=NO_LOCK)

    def as_json(self) -> dict[str, Any]:
        return {
            "sql": self.sql,
            "line": self.line,
            "node": self.node,
            "kind": self.kind,
            "actions": [a.as_json() for a in self.actions],
            "flags": list(self.flags),
            "refused": self.refused.as_json() if self.refused else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ParsedStatement:
        refused = data.get("refused")
        return cls(
            sql=data["sql"],
            line=int(data.get("line") or 1),
            node=data.get("node", ""),
            kind=data.get("kind", ""),
            actions=tuple(Action.from_json(a) for a in data.get("actions") or ()),
            flags=tuple(data.get("flags") or ()),
            refused=Refusal(**refused) if refused else None,
        )


class ScriptSyntaxError(Exception):
    def __init__(self, message: str, *, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


# --- splitting ------------------------------------------------------------------------------


def _parse(text: str) -> Any:
    _refuse_psql_meta(text)
    try:
        return pg_parser.parse_sql(text)
    except pg_parser.ParseError as exc:
        # The parser's location is a character offset into the whole script (pglast converts it).
        location = exc.args[1] if len(exc.args) > 1 else getattr(exc, "location", None)
        line = text.count("\n", 0, location) + 1 if isinstance(location, int) and location >= 0 else None
        raise ScriptSyntaxError(str(exc.args[0]) if exc.args else str(exc), line=line) from None


def split_statements(text: str) -> list[tuple[str, int]]:
    """``[(statement, line)]`` exactly as PostgreSQL splits ``text``: empty statements, comments
    and whitespace between statements left out. ScriptSyntaxError when the parser rejects it."""
    return [(sql, line) for sql, line, _ in _split(text)]


def _split(text: str) -> list[tuple[str, int, Any]]:
    raw = _parse(text)
    statements = []
    for item in raw:
        start = item.stmt_location or 0
        end = start + item.stmt_len if item.stmt_len else len(text)
        sql = text[start:end].strip().rstrip(";").rstrip()
        if not sql:
            continue
        # stmt_location points at the first token, after any comment before the statement.
        offset = start + (len(text[start:end]) - len(text[start:end].lstrip()))
        statements.append((sql, text.count("\n", 0, offset) + 1, item))
    return statements


def split_and_classify_single(text: str, *, line: int) -> tuple[int, ParsedStatement | None]:
    """Parse ``text`` once: how many statements it holds and, when exactly one, its classification
    (what ``len(split_statements(text))`` and ``classify_one`` say, for half the parsing)."""
    statements = _split(text)
    if len(statements) != 1:
        return len(statements), None
    sql, _, item = statements[0]
    return 1, classify_one(sql, line=line, tree=item.stmt(skip_none=True))


def _refuse_psql_meta(text: str) -> None:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("\\"):
            raise ScriptSyntaxError(RULES[RULE_PSQL] + f" ({line.strip()[:40]})", line=number)


# --- classifying ----------------------------------------------------------------------------


def parse_script(text: str) -> list[ParsedStatement]:
    """Split and classify every statement of a script. A script the parser rejects raises
    ScriptSyntaxError (with its line); refused statements carry their Refusal."""
    return [classify_one(sql, line=line) for sql, line in split_statements(text)]


def classify(sql: str) -> ParsedStatement:
    """Classify one statement (a script of exactly one statement)."""
    statements = split_statements(sql)
    if len(statements) != 1:
        raise ScriptSyntaxError(f"expected one statement, found {len(statements)}", line=1)
    return classify_one(statements[0][0], line=1)


def classify_one(sql: str, *, line: int, tree: dict[str, Any] | None = None) -> ParsedStatement:
    if tree is None:
        tree = pg_parser.parse_sql(sql)[0].stmt(skip_none=True)
    node = tree["@"]
    handler = _HANDLERS.get(node, _other)
    kind, actions, flags, refused = handler(tree)
    refused = refused or _forbidden_calls(tree) or _body_refusal(tree)
    return ParsedStatement(
        sql=sql,
        line=line,
        node=node,
        kind=kind,
        actions=tuple(actions),
        flags=tuple(dict.fromkeys(flags)),
        refused=refused,
    )


def _walk(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _walk(item)


def _name(parts: Any) -> str:
    """The last part of a qualified name list (funcname, TypeName.names)."""
    names = [p.get("sval", "") for p in parts or () if isinstance(p, dict)]
    return names[-1].lower() if names else ""


def _qualified(parts: Any) -> str:
    return ".".join(p.get("sval", "") for p in parts or () if isinstance(p, dict)).lower()


def _table(range_var: dict[str, Any] | None) -> str:
    if not range_var:
        return ""
    schema = range_var.get("schemaname")
    return f"{schema}.{range_var['relname']}" if schema else range_var["relname"]


def _enum(value: Any) -> str:
    return value.get("name", "") if isinstance(value, dict) else str(value)


def _refuse(rule: str, detail: str = "") -> Refusal:
    base = RULES[rule]
    return Refusal(rule=rule, message=f"{detail}: {base}" if detail else base)


def _forbidden_calls(tree: dict[str, Any]) -> Refusal | None:
    for node in _walk(tree):
        if node.get("@") != "FuncCall":
            continue
        name = _name(node.get("funcname"))
        rule = FORBIDDEN_FUNCTIONS.get(name)
        if rule:
            return _refuse(rule, f"{name}()")
        if name == "set_config":
            args = node.get("args") or ()
            first = args[0] if args else {}
            setting = (first.get("val") or {}).get("sval", "") if first.get("@") == "A_Const" else ""
            if setting.lower() in ROLE_SETTINGS:
                return _refuse(RULE_ROLES, f"set_config('{setting}')")
            if setting.lower() in CONSOLE_SETTINGS:
                return _refuse(RULE_SESSION_SETTINGS, f"set_config('{setting}')")
            if not setting:
                return _refuse(RULE_SESSION_SETTINGS, "set_config() with a computed name")
    return None


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def _body_refusal(tree: dict[str, Any]) -> Refusal | None:
    """A DO block's or a function's body is text to the parser: look at its words. Conservative on
    purpose (a forbidden name in a comment of the body is refused too); dynamic SQL built from
    pieces cannot be seen, which is why the rehearsal's role has no such rights either."""
    body = _code_body(tree)
    if not body:
        return None
    words = {w.lower() for w in _WORD.findall(body)}
    for name in sorted(words & set(FORBIDDEN_FUNCTIONS)):
        return _refuse(FORBIDDEN_FUNCTIONS[name], f"{name}() in the body")
    if "copy" in words and ("program" in words or re.search(r"(?i)\b(to|from)\s+'", body)):
        return _refuse(RULE_COPY_FILE_OR_PROGRAM, "COPY in the body")
    if re.search(r"(?i)\bset\s+(local\s+|session\s+)?(role|session\s+authorization)\b", body):
        return _refuse(RULE_ROLES, "SET ROLE in the body")
    return None


def _code_body(tree: dict[str, Any]) -> str:
    options = tree.get("args") if tree.get("@") == "DoStmt" else tree.get("options")
    for option in options or ():
        if isinstance(option, dict) and option.get("defname") == "as":
            arg = option.get("arg")
            if isinstance(arg, dict) and "sval" in arg:
                return arg["sval"]
            if isinstance(arg, (list, tuple)):
                return " ".join(a.get("sval", "") for a in arg if isinstance(a, dict))
    return ""


# Each handler returns (kind, actions, flags, refusal).
Result = tuple[str, list[Action], list[str], Refusal | None]


def _transaction(tree: dict[str, Any]) -> Result:
    kind = _enum(tree.get("kind")).replace("TRANS_STMT_", "").replace("_", " ").lower()
    return kind, [], [], _refuse(RULE_TRANSACTION_CONTROL, kind.upper())


def _alter_table(tree: dict[str, Any]) -> Result:
    objtype = _enum(tree.get("objtype"))
    table = _table(tree.get("relation"))
    what = {"OBJECT_INDEX": "alter index", "OBJECT_VIEW": "alter view", "OBJECT_SEQUENCE": "alter sequence"}.get(
        objtype, "alter table"
    )
    if what != "alter table":
        return what, [Action(what, table, ACCESS_EXCLUSIVE, CATALOG)], [], None
    actions: list[Action] = []
    flags: list[str] = []
    for cmd in tree.get("cmds") or ():
        action, cmd_flags = _alter_table_cmd(cmd, table)
        actions.append(action)
        flags += cmd_flags
    if any(a.lock == ACCESS_EXCLUSIVE for a in actions):
        flags.insert(0, LOCK_HEAVY)
    return "alter table", actions, flags, None


def _alter_table_cmd(cmd: dict[str, Any], table: str) -> tuple[Action, list[str]]:
    subtype = _enum(cmd.get("subtype"))
    definition = cmd.get("def_") or {}
    column = cmd.get("name") or definition.get("colname") or ""
    detail: dict[str, Any] = {"column": column} if column else {}
    if subtype == "AT_AddColumn":
        rewrite = _column_rewrites(definition)
        index = any(
            _enum(c.get("contype")) in ("CONSTR_PRIMARY", "CONSTR_UNIQUE") for c in definition.get("constraints") or ()
        )
        cost = REWRITE if rewrite else INDEX_BUILD if index else CATALOG
        return Action("add column", table, ACCESS_EXCLUSIVE, cost, detail), [REWRITES_TABLE] if rewrite else []
    if subtype == "AT_AlterColumnType":
        detail["type"] = _qualified((definition.get("typeName") or {}).get("names"))
        # Binary-coercible changes (varchar(n) to a larger n, text) do not rewrite: the rehearsal
        # sees whether the table's file changed and corrects this guess.
        return Action("alter column type", table, ACCESS_EXCLUSIVE, REWRITE, detail), [REWRITES_TABLE]
    if subtype == "AT_SetNotNull":
        return Action("set not null", table, ACCESS_EXCLUSIVE, SCAN, detail), [SCANS_TABLE]
    if subtype in ("AT_DropColumn",):
        return Action("drop column", table, ACCESS_EXCLUSIVE, CATALOG, detail), [DESTRUCTIVE]
    if subtype == "AT_DropConstraint":
        return Action("drop constraint", table, ACCESS_EXCLUSIVE, CATALOG, {"constraint": cmd.get("name")}), [
            DESTRUCTIVE
        ]
    if subtype == "AT_AddConstraint":
        return _add_constraint(definition, table)
    if subtype == "AT_ValidateConstraint":
        return Action("validate constraint", table, SHARE_UPDATE_EXCLUSIVE, SCAN, {"constraint": cmd.get("name")}), []
    if subtype in ("AT_SetLogged", "AT_SetUnLogged", "AT_SetTableSpace", "AT_SetAccessMethod"):
        return Action(subtype[3:].lower().replace("_", " "), table, ACCESS_EXCLUSIVE, REWRITE), [REWRITES_TABLE]
    if subtype in ("AT_SetStatistics", "AT_ClusterOn", "AT_DropCluster", "AT_SetRelOptions", "AT_ResetRelOptions"):
        return Action(_words(subtype), table, SHARE_UPDATE_EXCLUSIVE, CATALOG, detail), []
    if subtype in ("AT_EnableTrig", "AT_DisableTrig", "AT_EnableTrigAll", "AT_DisableTrigAll", "AT_AddIndex"):
        return Action(_words(subtype), table, SHARE_ROW_EXCLUSIVE, CATALOG, detail), []
    return Action(_words(subtype), table, ACCESS_EXCLUSIVE, CATALOG, detail), []


def _words(subtype: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", " ", subtype.removeprefix("AT_")).lower()


def _column_rewrites(definition: dict[str, Any]) -> bool:
    """An added column rewrites the table when its default is volatile, or it is an identity,
    serial or stored generated column (PostgreSQL 11+ stores a constant default in the catalog)."""
    if definition.get("identity") not in (None, "", "\x00") or definition.get("generated") not in (None, "", "\x00"):
        return True
    type_name = _name((definition.get("typeName") or {}).get("names"))
    if type_name in ("serial", "bigserial", "smallserial", "serial4", "serial8", "serial2"):
        return True
    for constraint in definition.get("constraints") or ():
        contype = _enum(constraint.get("contype"))
        if contype in ("CONSTR_IDENTITY", "CONSTR_GENERATED"):
            return True
        if contype == "CONSTR_DEFAULT":
            for node in _walk(constraint.get("raw_expr")):
                if node.get("@") == "FuncCall" and _name(node.get("funcname")) in VOLATILE_FUNCTIONS:
                    return True
    return False


def _add_constraint(definition: dict[str, Any], table: str) -> tuple[Action, list[str]]:
    contype = _enum(definition.get("contype"))
    not_valid = bool(definition.get("skip_validation"))
    detail: dict[str, Any] = {"constraint": definition.get("conname") or "", "not_valid": not_valid}
    if contype == "CONSTR_FOREIGN":
        detail["references"] = _table(definition.get("pktable"))
        cost = CATALOG if not_valid else SCAN
        # SHARE ROW EXCLUSIVE on both tables: writes wait, reads go on.
        return Action("add foreign key", table, SHARE_ROW_EXCLUSIVE, cost, detail), (
            [] if not_valid else [BLOCKS_WRITES, SCANS_TABLE]
        )
    if contype == "CONSTR_CHECK":
        cost = CATALOG if not_valid else SCAN
        return Action("add check", table, ACCESS_EXCLUSIVE, cost, detail), [] if not_valid else [SCANS_TABLE]
    if contype in ("CONSTR_PRIMARY", "CONSTR_UNIQUE", "CONSTR_EXCLUSION"):
        using_index = bool(definition.get("indexname"))
        cost = CATALOG if using_index else INDEX_BUILD
        what = {"CONSTR_PRIMARY": "add primary key", "CONSTR_UNIQUE": "add unique", "CONSTR_EXCLUSION": "add exclusion"}
        return Action(what[contype], table, ACCESS_EXCLUSIVE, cost, detail), []
    if contype == "CONSTR_NOTNULL":
        return Action("set not null", table, ACCESS_EXCLUSIVE, SCAN, detail), [SCANS_TABLE]
    return Action("add constraint", table, ACCESS_EXCLUSIVE, CATALOG, detail), []


def _index(tree: dict[str, Any]) -> Result:
    table = _table(tree.get("relation"))
    detail = {
        "index": tree.get("idxname") or "",
        "unique": bool(tree.get("unique")),
        "concurrent": bool(tree.get("concurrent")),
    }
    if tree.get("concurrent"):
        return (
            "create index",
            [Action("create index", table, SHARE_UPDATE_EXCLUSIVE, INDEX_BUILD, detail)],
            [],
            _refuse(
                RULE_NOT_IN_TRANSACTION,
                "CREATE INDEX CONCURRENTLY (turn on \u201cBuild new indexes during Prepare\u201d on the "
                "environment to have the console build it concurrently ahead of the window)",
            ),
        )
    return "create index", [Action("create index", table, SHARE, INDEX_BUILD, detail)], [BLOCKS_WRITES], None


def _drop(tree: dict[str, Any]) -> Result:
    objtype = _enum(tree.get("removeType")).removeprefix("OBJECT_").lower().replace("_", " ")
    refused = None
    if tree.get("concurrent"):
        refused = _refuse(RULE_NOT_IN_TRANSACTION, "DROP INDEX CONCURRENTLY")
    names = []
    for obj in tree.get("objects") or ():
        if isinstance(obj, (list, tuple)):
            names.append(_qualified(obj))
    actions = [Action(f"drop {objtype}", name, ACCESS_EXCLUSIVE, CATALOG) for name in names]
    return f"drop {objtype}", actions, [LOCK_HEAVY, DESTRUCTIVE], refused


def _dml(kind: str) -> Any:
    def handler(tree: dict[str, Any]) -> Result:
        table = _table(tree.get("relation"))
        flags = [TOUCHES_ROWS]
        detail: dict[str, Any] = {"where": bool(tree.get("whereClause"))}
        if kind == "delete" and not tree.get("whereClause"):
            flags.append(DESTRUCTIVE)
        if kind == "insert":
            select = tree.get("selectStmt") or {}
            detail["values"] = bool(select.get("valuesLists"))
            sources = [_table(node) for node in _walk(select.get("fromClause")) if node.get("@") == "RangeVar"]
            detail["reads"] = sources
        return kind, [Action(kind, table, ROW_EXCLUSIVE, DATA_CHANGE, detail)], flags, None

    return handler


def _copy(tree: dict[str, Any]) -> Result:
    table = _table(tree.get("relation"))
    if tree.get("is_program") or tree.get("filename"):
        where = "PROGRAM" if tree.get("is_program") else "a file"
        return "copy", [], [], _refuse(RULE_COPY_FILE_OR_PROGRAM, f"COPY {table} with {where}")
    return "copy", [], [], _refuse(RULE_COPY_NEEDS_CLIENT)


def _variable_set(tree: dict[str, Any]) -> Result:
    name = (tree.get("name") or "").lower()
    if name in ROLE_SETTINGS:
        return "set", [], [], _refuse(RULE_ROLES, f"SET {name.replace('_', ' ').upper()}")
    if name in CONSOLE_SETTINGS:
        return "set", [], [], _refuse(RULE_SESSION_SETTINGS, f"SET {name}")
    return "set", [], [], None


def _fixed(kind: str, rule: str | None = None, detail: str = "", lock: str = NO_LOCK, cost: str = CATALOG):
    def handler(tree: dict[str, Any]) -> Result:
        refused = _refuse(rule, detail or kind.upper()) if rule else None
        table = _table(tree.get("relation"))
        actions = [Action(kind, table, lock, cost)] if table and lock else []
        flags = [LOCK_HEAVY] if lock == ACCESS_EXCLUSIVE and table else []
        if cost == REWRITE and table:
            flags.append(REWRITES_TABLE)
        return kind, actions, flags, refused

    return handler


def _create_extension(tree: dict[str, Any]) -> Result:
    name = (tree.get("extname") or "").lower()
    rule = OUTSIDE_EXTENSIONS.get(name)
    return "create extension", [], [], _refuse(rule, f"CREATE EXTENSION {name}") if rule else None


def _create_function(tree: dict[str, Any]) -> Result:
    language = ""
    for option in tree.get("options") or ():
        if isinstance(option, dict) and option.get("defname") == "language":
            language = ((option.get("arg") or {}).get("sval") or "").lower()
    kind = "create procedure" if tree.get("is_procedure") else "create function"
    if language in UNTRUSTED_LANGUAGES:
        return kind, [], [], _refuse(RULE_UNTRUSTED_CODE, f"LANGUAGE {language}")
    return kind, [], [], None


def _reindex(tree: dict[str, Any]) -> Result:
    params = {(p.get("defname") or "").lower() for p in tree.get("params") or () if isinstance(p, dict)}
    kind_name = _enum(tree.get("kind")).removeprefix("REINDEX_OBJECT_").lower()
    if "concurrently" in params:
        return "reindex", [], [], _refuse(RULE_NOT_IN_TRANSACTION, "REINDEX CONCURRENTLY")
    if kind_name in ("schema", "system", "database"):
        return "reindex", [], [], _refuse(RULE_NOT_IN_TRANSACTION, f"REINDEX {kind_name.upper()}")
    table = _table(tree.get("relation"))
    return "reindex", [Action("reindex", table, ACCESS_EXCLUSIVE, INDEX_BUILD)], [LOCK_HEAVY], None


def _cluster(tree: dict[str, Any]) -> Result:
    if not tree.get("relation"):
        return "cluster", [], [], _refuse(RULE_NOT_IN_TRANSACTION, "CLUSTER of every table")
    table = _table(tree.get("relation"))
    return "cluster", [Action("cluster", table, ACCESS_EXCLUSIVE, REWRITE)], [LOCK_HEAVY, REWRITES_TABLE], None


def _discard(tree: dict[str, Any]) -> Result:
    target = _enum(tree.get("target")).removeprefix("DISCARD_").lower()
    if target == "all":
        return "discard", [], [], _refuse(RULE_NOT_IN_TRANSACTION, "DISCARD ALL")
    return "discard", [], [], None


def _lock(tree: dict[str, Any]) -> Result:
    modes = {
        1: "ACCESS SHARE",
        2: "ROW SHARE",
        3: ROW_EXCLUSIVE,
        4: SHARE_UPDATE_EXCLUSIVE,
        5: SHARE,
        6: SHARE_ROW_EXCLUSIVE,
        7: EXCLUSIVE,
        8: ACCESS_EXCLUSIVE,
    }
    mode = modes.get(int(tree.get("mode") or 8), ACCESS_EXCLUSIVE)
    mode = mode if mode in _LOCK_RANK else NO_LOCK
    tables = [_table(r) for r in tree.get("relations") or () if isinstance(r, dict)]
    return "lock", [Action("lock", t, mode, CATALOG) for t in tables], [LOCK_HEAVY], None


def _refresh(tree: dict[str, Any]) -> Result:
    table = _table(tree.get("relation"))
    lock = EXCLUSIVE if tree.get("concurrent") else ACCESS_EXCLUSIVE
    return "refresh materialized view", [Action("refresh materialized view", table, lock, REWRITE)], [LOCK_HEAVY], None


def _other(tree: dict[str, Any]) -> Result:
    node = tree["@"]
    return re.sub(r"(?<!^)(?=[A-Z])", " ", node.removesuffix("Stmt")).lower(), [], [], None


_HANDLERS = {
    "TransactionStmt": _transaction,
    "AlterTableStmt": _alter_table,
    "IndexStmt": _index,
    "DropStmt": _drop,
    "InsertStmt": _dml("insert"),
    "UpdateStmt": _dml("update"),
    "DeleteStmt": _dml("delete"),
    "MergeStmt": _dml("merge"),
    "CopyStmt": _copy,
    "VariableSetStmt": _variable_set,
    "CreateExtensionStmt": _create_extension,
    "CreateFunctionStmt": _create_function,
    "ReindexStmt": _reindex,
    "ClusterStmt": _cluster,
    "DiscardStmt": _discard,
    "LockStmt": _lock,
    "RefreshMatViewStmt": _refresh,
    "TruncateStmt": lambda tree: (
        "truncate",
        [Action("truncate", _table(r), ACCESS_EXCLUSIVE, CATALOG) for r in tree.get("relations") or ()],
        [LOCK_HEAVY, DESTRUCTIVE],
        None,
    ),
    "CreateStmt": lambda tree: ("create table", [], [], None),
    # ANALYZE alone runs in a transaction; VACUUM never does.
    "VacuumStmt": lambda tree: _fixed("vacuum", RULE_NOT_IN_TRANSACTION, "VACUUM")(tree)
    if tree.get("is_vacuumcmd")
    else ("analyze", [], [], None),
    "CreatedbStmt": _fixed("create database", RULE_NOT_IN_TRANSACTION),
    "DropdbStmt": _fixed("drop database", RULE_NOT_IN_TRANSACTION),
    "CreateTableSpaceStmt": _fixed("create tablespace", RULE_NOT_IN_TRANSACTION),
    "DropTableSpaceStmt": _fixed("drop tablespace", RULE_NOT_IN_TRANSACTION),
    "CreateSubscriptionStmt": _fixed("create subscription", RULE_NOT_IN_TRANSACTION),
    "DropSubscriptionStmt": _fixed("drop subscription", RULE_NOT_IN_TRANSACTION),
    "AlterSystemStmt": _fixed("alter system", RULE_ALTER_SYSTEM),
    "CreateRoleStmt": _fixed("create role", RULE_ROLES),
    "AlterRoleStmt": _fixed("alter role", RULE_ROLES),
    "AlterRoleSetStmt": _fixed("alter role", RULE_ROLES),
    "DropRoleStmt": _fixed("drop role", RULE_ROLES),
    "GrantRoleStmt": _fixed("grant role", RULE_ROLES),
    "ReassignOwnedStmt": _fixed("reassign owned", RULE_ROLES),
    "DropOwnedStmt": _fixed("drop owned", RULE_ROLES),
    "CreateFdwStmt": _fixed("create foreign data wrapper", RULE_FOREIGN_DATA),
    "AlterFdwStmt": _fixed("alter foreign data wrapper", RULE_FOREIGN_DATA),
    "CreateForeignServerStmt": _fixed("create server", RULE_FOREIGN_DATA),
    "AlterForeignServerStmt": _fixed("alter server", RULE_FOREIGN_DATA),
    "CreateForeignTableStmt": _fixed("create foreign table", RULE_FOREIGN_DATA),
    "CreateUserMappingStmt": _fixed("create user mapping", RULE_FOREIGN_DATA),
    "AlterUserMappingStmt": _fixed("alter user mapping", RULE_FOREIGN_DATA),
    "ImportForeignSchemaStmt": _fixed("import foreign schema", RULE_FOREIGN_DATA),
    "CreatePLangStmt": _fixed("create language", RULE_UNTRUSTED_CODE),
    "LoadStmt": _fixed("load", RULE_UNTRUSTED_CODE, "LOAD of a shared library"),
    "CheckPointStmt": _fixed("checkpoint", RULE_SERVER_ADMIN),
    "AlterDatabaseSetStmt": _fixed("alter database", RULE_SERVER_ADMIN),
    "AlterDatabaseStmt": _fixed("alter database", RULE_SERVER_ADMIN),
    "CreateReplicationSlotCmd": _fixed("replication", RULE_SERVER_ADMIN),
}
