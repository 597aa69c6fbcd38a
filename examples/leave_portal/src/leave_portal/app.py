"""WSGI entry point: answers with the application's name and version, and reads one of its tables.

The database comes from LIFETIME_APP_DB_DSN; without it (or when it does not answer) the page
still answers, saying so, so that a front-end can serve the application anywhere.
"""

import json
import os

from leave_portal.release_info import NAME, VERSION

SCHEMA = "leave_portal"
TABLE = "leave_balance"


def count_rows():
    dsn = os.environ.get("LIFETIME_APP_DB_DSN")
    if not dsn:
        return None, "not configured"
    try:
        import psycopg2
    except ImportError:
        return None, "psycopg2 not installed"
    try:
        conn = psycopg2.connect(dsn, connect_timeout=2)
        try:
            with conn.cursor() as cur:
                cur.execute('select count(*) from "%s"."%s"' % (SCHEMA, TABLE))
                return cur.fetchone()[0], "ok"
        finally:
            conn.close()
    except Exception as exc:  # a page that explains beats a 500 during a switch
        return None, "unavailable: " + str(exc).strip().splitlines()[0][:200]


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path.rstrip("/").endswith("/health") or path == "/health":
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"ok\n"]
    rows, status = count_rows()
    body = {"application": NAME, "version": VERSION, "table": SCHEMA + "." + TABLE, "rows": rows, "database": status}
    text = "%s %s\n%s\n" % (NAME, VERSION, json.dumps(body, sort_keys=True))
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"), ("X-App-Version", VERSION)])
    return [text.encode("utf-8")]
