"""Application bundles: read an archive (zip or tar.gz), refuse anything unsafe, validate its manifest.

A bundle is untrusted input uploaded by a person or a pipeline. Reading it never touches the disk
(members are read into memory under a size and file-count limit) and never stores anything: the
catalog stores the archive only after ``read_bundle`` accepted it. The format is documented in
docs/bundle-format.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import posixpath
import re
import tomllib
import zipfile
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from core.refusals import Refusal
from deployments.catalog.archive import ArchiveRefused, iter_tar_gz, zip_entry_count

MANIFEST_NAME = "lifetime.toml"
# Limits against archive bombs: what the archive may unpack to, and how many members it may hold.
MAX_ARCHIVE_BYTES = 64 * 1024 * 1024
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
MAX_FILES = 20_000
MAX_SCRIPT_BYTES = 4 * 1024 * 1024
MAX_MANIFEST_BYTES = 1024 * 1024

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{1,48}$")
IDENTIFIER_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
SCRIPT_NAME_RE = re.compile(r"^sql/[A-Za-z0-9_.-]+\.sql$")
WSGI_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
# C0 and C1 control characters and DEL: never part of a file name we want to write.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Schemas an application may never claim: PostgreSQL's own and the console's history schema.
RESERVED_SCHEMAS = frozenset({"public", "information_schema", "lifetime_meta"})


class BundleRefused(Refusal):
    """The bundle cannot be accepted; ``message`` says why, for the person who uploaded it."""


# --- column types -------------------------------------------------------------------------

# Manifest spelling -> PostgreSQL's canonical spelling (what format_type() returns), so that the
# data model compares directly with the live catalog. Parametrised types are handled below.
SIMPLE_TYPES = {
    "smallint": "smallint",
    "int2": "smallint",
    "integer": "integer",
    "int": "integer",
    "int4": "integer",
    "bigint": "bigint",
    "int8": "bigint",
    "real": "real",
    "double precision": "double precision",
    "numeric": "numeric",
    "text": "text",
    "varchar": "character varying",
    "boolean": "boolean",
    "bool": "boolean",
    "date": "date",
    "time": "time without time zone",
    "timestamp": "timestamp without time zone",
    "timestamptz": "timestamp with time zone",
    "interval": "interval",
    "uuid": "uuid",
    "json": "json",
    "jsonb": "jsonb",
    "bytea": "bytea",
    "inet": "inet",
}
PARAM_TYPE_RE = re.compile(
    r"^(varchar|character varying|char|character|numeric|decimal)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)$"
)


def canonical_type(spelling: str) -> str:
    """The canonical PostgreSQL spelling of a whitelisted type; ValueError for anything else."""
    text = " ".join(str(spelling).lower().split())
    if text in SIMPLE_TYPES:
        return SIMPLE_TYPES[text]
    if text in {"character varying", "timestamp with time zone", "timestamp without time zone", "decimal"}:
        return "numeric" if text == "decimal" else text
    match = PARAM_TYPE_RE.match(text)
    if match:
        base, first, second = match.group(1), int(match.group(2)), match.group(3)
        if base in {"varchar", "character varying", "char", "character"}:
            if second is not None or not 1 <= first <= 10_485_760:
                raise ValueError(f"bad length in {spelling!r}")
            return f"{'character varying' if base in {'varchar', 'character varying'} else 'character'}({first})"
        scale = int(second) if second is not None else 0
        if not 1 <= first <= 1000 or scale > first:
            raise ValueError(f"bad precision/scale in {spelling!r}")
        return f"numeric({first},{scale})"
    raise ValueError(f"unknown column type {spelling!r}")


ALLOWED_TYPES_TEXT = "smallint, integer, bigint, real, double precision, numeric, numeric(p,s), text, varchar(n), char(n), boolean, date, time, timestamp, timestamptz, interval, uuid, json, jsonb, bytea, inet"
# SQL expressions a column default may use besides plain literals. Kept short on purpose: a
# default runs during Continue on every existing row of a table when a column is added.
DEFAULT_EXPRESSIONS = {
    "now()": "now()",
    "current_timestamp": "CURRENT_TIMESTAMP",
    "current_date": "CURRENT_DATE",
    "gen_random_uuid()": "gen_random_uuid()",
    "'{}'::jsonb": "'{}'::jsonb",
    "'[]'::jsonb": "'[]'::jsonb",
}
# Expressions that differ per row: adding a column with such a default rewrites the table.
VOLATILE_DEFAULTS = frozenset({"gen_random_uuid()"})


# --- the manifest, as typed values ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool = True
    default: str | None = None  # a SQL expression, already quoted when it is a literal
    identity: bool = False


@dataclasses.dataclass(frozen=True)
class Index:
    name: str
    columns: tuple[str, ...]
    unique: bool = False


@dataclasses.dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    indexes: tuple[Index, ...] = ()

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclasses.dataclass(frozen=True)
class DataModel:
    schema: str
    tables: tuple[Table, ...] = ()


@dataclasses.dataclass(frozen=True)
class Script:
    name: str  # path inside the bundle, e.g. sql/010_seed.sql
    sha256: str
    sql: str
    # False when the code of the version before cannot run once this script ran (it renames or
    # drops something): Roll Back of a plan that ran it is refused. Said in the manifest.
    backward_compatible: bool = True


SETTING_TYPES = ("string", "integer", "boolean")
SETTING_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@dataclasses.dataclass(frozen=True)
class Setting:
    """A setting the application reads at run time, valued per environment (``[settings.<name>]``)."""

    name: str
    type: str  # string, integer or boolean
    default: str | int | bool | None = None  # None: required (a value must be set per environment)
    secret: bool = False  # write-only and encrypted in the console; never shown, logged or sent in clear
    description: str = ""

    @property
    def required(self) -> bool:
        return self.default is None


@dataclasses.dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    kind: str
    description: str
    change_log: str
    wsgi: str
    dependencies: dict[str, str]
    data_model: DataModel
    scripts: tuple[Script, ...]
    native: dict[str, Any] | None
    settings: tuple[Setting, ...] = ()

    @property
    def native_hash(self) -> str:
        if self.native is None:
            return ""
        canonical = json.dumps(self.native, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def as_json(self) -> dict[str, Any]:
        """What ``ApplicationVersion.manifest`` keeps; ``manifest_from_json`` reads it back."""
        return {
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "description": self.description,
            "change_log": self.change_log,
            "wsgi": self.wsgi,
            "dependencies": dict(sorted(self.dependencies.items())),
            "data_model": dataclasses.asdict(self.data_model),
            "scripts": [dataclasses.asdict(s) for s in self.scripts],
            "native": self.native,
            "settings": [dataclasses.asdict(s) for s in self.settings],
        }


def manifest_from_json(data: dict[str, Any]) -> Manifest:
    model = data.get("data_model") or {"schema": data.get("name", ""), "tables": []}
    tables = tuple(
        Table(
            name=t["name"],
            columns=tuple(Column(**c) for c in t["columns"]),
            primary_key=tuple(t.get("primary_key") or ()),
            indexes=tuple(Index(name=i["name"], columns=tuple(i["columns"]), unique=i["unique"]) for i in t["indexes"]),
        )
        for t in model["tables"]
    )
    return Manifest(
        name=data["name"],
        version=data["version"],
        kind=data["kind"],
        description=data.get("description", ""),
        change_log=data.get("change_log", ""),
        wsgi=data.get("wsgi", ""),
        dependencies=dict(data.get("dependencies") or {}),
        data_model=DataModel(schema=model["schema"], tables=tables),
        scripts=tuple(Script(**s) for s in data.get("scripts") or ()),
        native=data.get("native"),
        settings=tuple(Setting(**s) for s in data.get("settings") or ()),
    )


@dataclasses.dataclass(frozen=True)
class Bundle:
    """An accepted bundle: its manifest and its members (path -> bytes)."""

    manifest: Manifest
    files: dict[str, bytes]

    def sources(self) -> dict[str, bytes]:
        """Members under src/, keyed by their path relative to src/."""
        return {path[4:]: data for path, data in self.files.items() if path.startswith("src/")}


# --- reading the archive ---------------------------------------------------------------


def read_bundle(data: bytes) -> Bundle:
    """Unpack ``data`` in memory and validate it; raise BundleRefused with the reason."""
    if len(data) > MAX_ARCHIVE_BYTES:
        raise BundleRefused(f"The archive is larger than {MAX_ARCHIVE_BYTES // (1024 * 1024)} MB.")
    try:
        if data[:4] == b"PK\x03\x04" or data[:4] == b"PK\x05\x06":
            files = _read_zip(data)
        elif data[:2] == b"\x1f\x8b":
            files = _read_tar(data)
        else:
            raise BundleRefused("Not a bundle: expected a zip or a tar.gz archive.")
    except ArchiveRefused as exc:
        raise BundleRefused(exc.message) from None
    if MANIFEST_NAME not in files:
        raise BundleRefused(f"No {MANIFEST_NAME} at the root of the archive.")
    manifest = parse_manifest(files[MANIFEST_NAME], files)
    return Bundle(manifest=manifest, files=files)


def _member_path(name: str) -> str:
    """The normalised member path, or BundleRefused if it could land outside the bundle."""
    if "\\" in name or "\x00" in name:
        raise BundleRefused(f"Refused member {name!r}: backslashes and NUL are not allowed in paths.")
    if CONTROL_CHARACTERS.search(name):
        # A newline in a name once let the compile step write outside its temporary folder.
        raise BundleRefused(
            f"Refused member {name!r}: control characters (newlines, tabs...) are not allowed in paths."
        )
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise BundleRefused(f"Refused member {name!r}: absolute paths are not allowed.")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise BundleRefused(f"Refused member {name!r}: '..' (path traversal) is not allowed.")
    return posixpath.join(*parts) if parts else ""


class _Budget:
    def __init__(self) -> None:
        self.files = 0
        self.bytes = 0

    def take(self, name: str, size: int) -> None:
        self.files += 1
        self.bytes += size
        if self.files > MAX_FILES:
            raise BundleRefused(f"The archive holds more than {MAX_FILES} files.")
        if self.bytes > MAX_UNPACKED_BYTES:
            raise BundleRefused(
                f"The archive unpacks to more than {MAX_UNPACKED_BYTES // (1024 * 1024)} MB (at {name!r}): refused as an archive bomb."
            )


def _read_limited(handle: Any, name: str, declared: int, budget: _Budget) -> bytes:
    # Declared sizes can lie (zip headers are attacker-controlled): count what really comes out.
    budget.take(name, declared)
    data = handle.read(declared + 1)
    if len(data) > declared:
        raise BundleRefused(f"Member {name!r} unpacks to more than it declares: refused as an archive bomb.")
    return data


def _read_zip(data: bytes) -> dict[str, bytes]:
    # Counted before zipfile builds one object per entry of the central directory.
    zip_entry_count(data, limit=MAX_FILES)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError) as exc:
        raise BundleRefused(f"The zip archive is damaged: {exc}.") from None
    files: dict[str, bytes] = {}
    budget = _Budget()
    with archive:
        for info in archive.infolist():
            path = _member_path(info.filename)
            if info.is_dir() or not path:
                continue
            mode = (info.external_attr >> 16) & 0o170000
            if mode and mode != 0o100000:
                kind = "a symbolic link" if mode == 0o120000 else "not a regular file"
                raise BundleRefused(f"Refused member {info.filename!r}: {kind}; links and devices are not allowed.")
            if path in files:
                raise BundleRefused(f"The archive holds {path!r} twice.")
            try:
                with archive.open(info) as handle:
                    files[path] = _read_limited(handle, path, info.file_size, budget)
            except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError) as exc:
                raise BundleRefused(f"Cannot read {path!r} from the zip archive: {exc}.") from None
    return files


def _read_tar(data: bytes) -> dict[str, bytes]:
    # Not tarfile: see deployments.catalog.archive for why its headers cannot be trusted to it.
    files: dict[str, bytes] = {}
    budget = _Budget()
    for member in iter_tar_gz(data, max_entries=MAX_FILES):
        path = _member_path(member.name)
        if member.kind == "dir" or not path:
            budget.take(path, 0)
            continue
        if member.kind in ("symlink", "hardlink"):
            raise BundleRefused(f"Refused member {member.name!r}: links are not allowed.")
        if member.kind != "file":
            raise BundleRefused(
                f"Refused member {member.name!r}: devices, pipes and other special files are not allowed."
            )
        if path in files:
            raise BundleRefused(f"The archive holds {path!r} twice.")
        budget.take(path, member.size)
        files[path] = member.read(member.size)
    return files


# --- the manifest ------------------------------------------------------------------------


def parse_manifest(raw: bytes, files: dict[str, bytes]) -> Manifest:
    if len(raw) > MAX_MANIFEST_BYTES:
        raise BundleRefused(f"{MANIFEST_NAME} is larger than {MAX_MANIFEST_BYTES // 1024} KB.")
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BundleRefused(f"{MANIFEST_NAME} is not UTF-8 text.") from None
    except tomllib.TOMLDecodeError as exc:
        raise BundleRefused(f"{MANIFEST_NAME} is not valid TOML: {exc}.") from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively.
        raise BundleRefused(f"{MANIFEST_NAME} nests arrays or tables too deeply.") from None
    try:
        return _manifest(doc, files)
    except (TypeError, AttributeError, ValueError, KeyError) as exc:
        # A value of an unexpected shape that no check above named (a list where a table is
        # expected, a table where a string is): still the author's mistake, never a 500.
        raise BundleRefused(f"{MANIFEST_NAME} has a value of an unexpected shape ({exc}).") from None


def _manifest(doc: dict[str, Any], files: dict[str, bytes]) -> Manifest:
    app = _table(doc, "application", required=True)
    name = _string(app, "name", "application")
    if not NAME_RE.match(name):
        raise BundleRefused(
            f"Application name {name!r} must start with a lowercase letter and hold only lowercase letters, digits and _ (2-49 characters)."
        )
    version_text = _string(app, "version", "application")
    try:
        version = Version(version_text)
    except InvalidVersion:
        raise BundleRefused(f"Version {version_text!r} is not a PEP 440 version (e.g. 1.4.0).") from None
    if str(version) != version_text:
        raise BundleRefused(f"Write the version in its normal PEP 440 form: {str(version)!r}, not {version_text!r}.")
    kind = _string(app, "kind", "application")
    if kind not in ("web", "mobile"):
        raise BundleRefused(f"Kind {kind!r} is not web or mobile.")
    wsgi = _string(app, "wsgi", "application")
    if not WSGI_RE.match(wsgi):
        raise BundleRefused(f"wsgi = {wsgi!r} must look like 'package.module:application'.")
    module_path = wsgi.split(":")[0].replace(".", "/")
    if f"src/{module_path}.py" not in files and f"src/{module_path}/__init__.py" not in files:
        raise BundleRefused(f"The WSGI entry point {wsgi!r} names a module that is not in src/.")
    dependencies = _dependencies(doc.get("dependencies", {}), name)
    data_model = _data_model(doc.get("data", {}), name)
    scripts = _script_flags(doc.get("scripts", {}), _scripts(files))
    native = _native(doc.get("native"), kind)
    settings = _settings(doc.get("settings", {}))
    return Manifest(
        name=name,
        version=version_text,
        kind=kind,
        description=str(app.get("description", "")),
        change_log=str(app.get("change_log", "")),
        wsgi=wsgi,
        dependencies=dependencies,
        data_model=data_model,
        scripts=scripts,
        native=native,
        settings=settings,
    )


def _table(doc: dict, key: str, *, required: bool = False) -> dict:
    value = doc.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise BundleRefused(f"{MANIFEST_NAME} needs a [{key}] table.")
    return value


def _string(table: dict, key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise BundleRefused(f'[{where}] needs {key} = "...".')
    return value.strip()


def _dependencies(raw: Any, own_name: str) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise BundleRefused("[dependencies] must map application names to version ranges.")
    result = {}
    for dep, spec in raw.items():
        if not NAME_RE.match(dep) or dep == own_name:
            raise BundleRefused(f"Dependency {dep!r} is not a valid application name.")
        if not isinstance(spec, str):
            raise BundleRefused(f'Dependency {dep}: the version range must be a string such as ">=1.0,<2".')
        try:
            SpecifierSet(spec)
        except InvalidSpecifier:
            raise BundleRefused(f"Dependency {dep}: {spec!r} is not a PEP 440 version range.") from None
        result[dep] = spec
    return result


def _identifier(value: Any, what: str) -> str:
    if not isinstance(value, str) or not IDENTIFIER_RE.match(value):
        raise BundleRefused(f"{what} {value!r} must be a lowercase SQL identifier (letters, digits, _).")
    return value


def _default(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, dict) and set(value) == {"sql"}:
        expr = " ".join(str(value["sql"]).lower().split())
        if expr not in DEFAULT_EXPRESSIONS:
            allowed = ", ".join(DEFAULT_EXPRESSIONS)
            raise BundleRefused(f"{where}: default expression {value['sql']!r} is not one of {allowed}.")
        return DEFAULT_EXPRESSIONS[expr]
    raise BundleRefused(f'{where}: a default is a literal or {{ sql = "now()" }}.')


def _data_model(raw: Any, name: str) -> DataModel:
    if not isinstance(raw, dict):
        raise BundleRefused("[data] must be a table.")
    schema = _identifier(raw.get("schema", name), "Schema")
    if schema in RESERVED_SCHEMAS or schema.startswith("pg_"):
        raise BundleRefused(f"Schema {schema!r} is reserved.")
    tables: list[Table] = []
    index_names: set[str] = set()
    for entry in raw.get("tables", []):
        if not isinstance(entry, dict):
            raise BundleRefused("Each [[data.tables]] entry must be a table.")
        table_name = _identifier(entry.get("name"), "Table name")
        if any(t.name == table_name for t in tables):
            raise BundleRefused(f"Table {table_name!r} is declared twice.")
        columns: list[Column] = []
        for col in entry.get("columns", []):
            where = f"Table {table_name}"
            if not isinstance(col, dict):
                raise BundleRefused(f"{where}: each column must be a table.")
            col_name = _identifier(col.get("name"), f"{where}: column name")
            where = f"Column {table_name}.{col_name}"
            if any(c.name == col_name for c in columns):
                raise BundleRefused(f"{where} is declared twice.")
            try:
                col_type = canonical_type(col.get("type", ""))
            except ValueError:
                raise BundleRefused(
                    f"{where}: unknown column type {col.get('type')!r}. Allowed: {ALLOWED_TYPES_TEXT}."
                ) from None
            identity = bool(col.get("identity", False))
            if identity and col_type not in ("smallint", "integer", "bigint"):
                raise BundleRefused(f"{where}: only integer columns can be identity columns.")
            default = _default(col.get("default"), where)
            if identity and default is not None:
                raise BundleRefused(f"{where}: an identity column has no default.")
            nullable = bool(col.get("nullable", True)) and not identity
            columns.append(Column(name=col_name, type=col_type, nullable=nullable, default=default, identity=identity))
        if not columns:
            raise BundleRefused(f"Table {table_name!r} has no columns.")
        known = {c.name for c in columns}
        primary_key = tuple(entry.get("primary_key", ()))
        for key_col in primary_key:
            if key_col not in known:
                raise BundleRefused(f"Table {table_name}: primary key column {key_col!r} is not a column.")
        indexes: list[Index] = []
        for idx in entry.get("indexes", []):
            idx_name = _identifier(idx.get("name"), f"Table {table_name}: index name")
            idx_columns = tuple(idx.get("columns", ()))
            if not idx_columns or any(c not in known for c in idx_columns):
                raise BundleRefused(f"Index {idx_name}: its columns must be columns of {table_name}.")
            if idx_name in index_names or idx_name == f"{table_name}_pkey":
                raise BundleRefused(f"Index name {idx_name!r} is used twice in the schema.")
            index_names.add(idx_name)
            indexes.append(Index(name=idx_name, columns=idx_columns, unique=bool(idx.get("unique", False))))
        tables.append(Table(name=table_name, columns=tuple(columns), primary_key=primary_key, indexes=tuple(indexes)))
    return DataModel(schema=schema, tables=tuple(tables))


def _scripts(files: dict[str, bytes]) -> tuple[Script, ...]:
    scripts = []
    for path in sorted(p for p in files if p.startswith("sql/")):
        if not SCRIPT_NAME_RE.match(path):
            raise BundleRefused(f"{path!r}: SQL scripts are sql/<name>.sql files, with no sub-folders.")
        raw = files[path]
        if len(raw) > MAX_SCRIPT_BYTES:
            raise BundleRefused(f"{path!r} is larger than {MAX_SCRIPT_BYTES // (1024 * 1024)} MB.")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BundleRefused(f"{path!r} is not UTF-8 text.") from None
        scripts.append(Script(name=path, sha256=hashlib.sha256(raw).hexdigest(), sql=text))
    return tuple(scripts)


def _script_flags(raw: Any, scripts: tuple[Script, ...]) -> tuple[Script, ...]:
    """``[scripts."sql/020_rename.sql"] backward_compatible = false`` in the manifest."""
    if not isinstance(raw, dict):
        raise BundleRefused('[scripts] must be a table of script paths, e.g. [scripts."sql/020_rename.sql"].')
    names = {s.name for s in scripts}
    flags: dict[str, bool] = {}
    for name, entry in raw.items():
        if name not in names:
            raise BundleRefused(f"[scripts.{name!r}]: the bundle has no such script (sql/<name>.sql).")
        if not isinstance(entry, dict) or set(entry) - {"backward_compatible"}:
            raise BundleRefused(f"[scripts.{name!r}] may only say backward_compatible = true or false.")
        value = entry.get("backward_compatible", True)
        if not isinstance(value, bool):
            raise BundleRefused(f"[scripts.{name!r}] backward_compatible must be true or false.")
        flags[name] = value
    return tuple(dataclasses.replace(s, backward_compatible=flags.get(s.name, True)) for s in scripts)


def _settings(raw: Any) -> tuple[Setting, ...]:
    """``[settings.<name>]`` tables: type, default (none: required), secret, description."""
    if not isinstance(raw, dict):
        raise BundleRefused("[settings] must be a table of settings, e.g. [settings.greeting].")
    found = []
    for name, entry in sorted(raw.items()):
        where = f"[settings.{name}]"
        if not SETTING_NAME_RE.match(name):
            raise BundleRefused(f"{where}: a setting's name is lower case letters, digits and _ (at most 63).")
        if not isinstance(entry, dict) or set(entry) - {"type", "default", "secret", "description"}:
            raise BundleRefused(f"{where} may say type, default, secret and description.")
        kind = entry.get("type", "string")
        if kind not in SETTING_TYPES:
            raise BundleRefused(f"{where}: type {kind!r} is not one of {', '.join(SETTING_TYPES)}.")
        secret = entry.get("secret", False)
        if not isinstance(secret, bool):
            raise BundleRefused(f"{where}: secret must be true or false.")
        default = entry.get("default")
        if default is not None:
            if secret:
                raise BundleRefused(f"{where}: a secret has no default in the bundle; set it per environment.")
            if not setting_value_fits(kind, default):
                raise BundleRefused(f"{where}: the default {default!r} is not a {kind}.")
        description = entry.get("description", "")
        if not isinstance(description, str):
            raise BundleRefused(f"{where}: description must be text.")
        found.append(Setting(name=name, type=kind, default=default, secret=secret, description=description))
    return tuple(found)


def setting_value_fits(kind: str, value: Any) -> bool:
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, str)


def parse_setting_value(kind: str, raw: str) -> str | int | bool:
    """A value typed in a form, as the setting's type; ValueError with a sentence when it is not one."""
    text = raw.strip()
    if kind == "boolean":
        if text.lower() in ("true", "yes", "on", "1"):
            return True
        if text.lower() in ("false", "no", "off", "0"):
            return False
        raise ValueError("must be true or false")
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            raise ValueError("must be a whole number") from None
    return raw


def _native(raw: Any, kind: str) -> dict[str, Any] | None:
    if kind == "web":
        if raw is not None:
            raise BundleRefused("Only mobile applications have a [native] section.")
        return None
    if not isinstance(raw, dict):
        raise BundleRefused("A mobile application needs a [native] section (app_id, plugins).")
    app_id = raw.get("app_id")
    if not isinstance(app_id, str) or not re.match(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$", app_id):
        raise BundleRefused(f"[native] app_id {app_id!r} must be a reverse domain name such as com.example.app.")
    plugins = raw.get("plugins", {})
    if not isinstance(plugins, dict):
        raise BundleRefused("[native.plugins] must map plugin names to versions.")
    clean_plugins = {}
    for plugin, plugin_version in plugins.items():
        try:
            Version(str(plugin_version))
        except InvalidVersion:
            raise BundleRefused(f"[native.plugins] {plugin} = {plugin_version!r} is not a version.") from None
        clean_plugins[str(plugin)] = str(plugin_version)
    platforms = raw.get("platforms", ["android", "ios"])
    if not isinstance(platforms, list) or not set(platforms) <= {"android", "ios"} or not platforms:
        raise BundleRefused("[native] platforms must be a list among android and ios.")
    return {"app_id": app_id, "platforms": sorted(set(platforms)), "plugins": dict(sorted(clean_plugins.items()))}
