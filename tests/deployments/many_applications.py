"""Plans of many small applications (each its own schema of a few tables), for the checks whose
cost must not grow with the number of applications: the tests and benchmarks/bench_continue.py."""

from __future__ import annotations

from examples.build import pack

TABLE = """
[[data.tables]]
name = "item_{n}"
primary_key = ["id"]
columns = [
  {{ name = "id", type = "bigint", identity = true }},
  {{ name = "code", type = "character varying(40)", nullable = false }},
  {{ name = "amount", type = "numeric(12,2)", default = 0 }},
]
indexes = [{{ name = "item_{n}_code_key", columns = ["code"], unique = true }}]
"""


def small_application_bundle(name: str, version: str = "1.0.0", *, tables: int = 3) -> bytes:
    """A web application ``name`` without dependencies whose data model is ``tables`` tables in
    the schema of its own name."""
    manifest = (
        f'[application]\nname = "{name}"\nversion = "{version}"\nkind = "web"\ndescription = ""\n'
        f'change_log = ""\nwsgi = "{name}.app:application"\n\n[data]\nschema = "{name}"\n'
        + "".join(TABLE.format(n=n) for n in range(tables))
    )
    app = (
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        f"    return [b'{name} {version}']\n"
    )
    return pack(
        {"lifetime.toml": manifest.encode(), f"src/{name}/__init__.py": b"", f"src/{name}/app.py": app.encode()},
        "tar.gz",
    )
