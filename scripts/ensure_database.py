"""Create the console's database (from DATABASE_URL) when the server does not have it yet."""

import os
import sys
import urllib.parse

import psycopg2
from psycopg2 import sql

url = urllib.parse.urlparse(os.environ["DATABASE_URL"])
name = (url.path or "/lifetime").lstrip("/") or "lifetime"
params = dict(
    host=url.hostname, port=url.port or 5432, user=url.username or "postgres", password=url.password, dbname="postgres"
)
try:
    conn = psycopg2.connect(**params, connect_timeout=5)
except psycopg2.OperationalError as exc:
    sys.exit(f"Cannot reach PostgreSQL at {url.hostname}:{url.port or 5432}: {exc}")
conn.autocommit = True
with conn.cursor() as cur:
    cur.execute("select 1 from pg_database where datname = %s", [name])
    if cur.fetchone() is None:
        cur.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        print(f"created database {name}")
conn.close()
