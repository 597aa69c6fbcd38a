"""An environment's database connection reaches a database of its own, with a role that can do
no more than a deployment needs; "Test connection" is no port scanner."""

from __future__ import annotations

import html
import socket
import threading
import time

import pytest
from django.urls import reverse

from core.actors import Actor
from core.models import AuditEvent
from environments import services
from environments.models import AccessLevel, Environment
from tests.conftest import dsn_for, make_user
from tests.environments.test_environment_pages import _form_data


def _save(client, environment, dsn: str, **extra):
    return client.post(
        reverse("environments:edit", args=[environment.key]), _form_data(environment, app_db_dsn=dsn, **extra)
    )


def _same_database_another_way(dsn: str) -> str:
    # The same server and database, spelled differently: what the server says decides, not the text.
    return dsn.replace("@127.0.0.1:", "@localhost:")


@pytest.fixture
def manager(landscape):
    user = make_user("test-manager")
    services.set_access(actor=Actor.system("test"), user=user, environment=landscape["Test"], level=AccessLevel.MANAGE)
    return user


def test_a_test_connection_to_productions_database_is_refused(client, landscape, admin_user):
    client.force_login(admin_user)
    test_env, prod = landscape["Test"], landscape["Production"]
    before = test_env.app_db_dsn()

    response = _save(client, test_env, _same_database_another_way(prod.app_db_dsn()))

    assert "reaches another environment's application database" in html.unescape(response.content.decode())
    test_env.refresh_from_db()
    assert test_env.app_db_dsn() == before
    check = html.unescape(
        client.post(
            reverse("environments:test_connection", args=[test_env.key]), {"app_db_dsn": prod.app_db_dsn()}
        ).content.decode()
    )
    assert "reaches another environment's application database" in check


def test_a_connection_to_the_consoles_own_database_is_refused_even_for_an_infra_admin(
    client, landscape, admin_user, settings
):
    client.force_login(admin_user)
    console = dsn_for(settings.DATABASES["default"]["NAME"])
    response = _save(client, landscape["Test"], console, confirm_privileged_role="on")
    assert "reaches the console's own database" in html.unescape(response.content.decode())
    landscape["Test"].refresh_from_db()
    assert landscape["Test"].app_db_dsn() != console


def test_a_superuser_connection_needs_an_infra_admins_confirmation_which_is_audited(
    client, landscape, admin_user, manager, app_databases
):
    test_env = landscape["Test"]
    fresh = app_databases.create()
    as_superuser = dsn_for(fresh.rsplit("/", 1)[1])

    client.force_login(manager)
    page = html.unescape(_save(client, test_env, as_superuser, confirm_privileged_role="on").content.decode())
    assert "is more than a deployment needs (superuser" in page
    client.force_login(admin_user)
    assert "more than a deployment needs" in _save(client, test_env, as_superuser).content.decode()
    assert _save(client, test_env, as_superuser, confirm_privileged_role="on").status_code == 302

    test_env.refresh_from_db()
    assert test_env.app_db_dsn() == as_superuser
    event = AuditEvent.objects.get(action="environment.privileged_role_confirmed", object_key=str(test_env.key))
    assert event.actor_name == "admin" and "superuser" in event.message


def test_roles_that_reach_the_servers_files_or_programs_are_refused(client, landscape, admin_user, app_databases):
    import psycopg2

    from tests.conftest import server_params

    dsn = app_databases.create()
    role = dsn.rsplit("/", 1)[1]
    conn = psycopg2.connect(**server_params())
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'grant pg_read_server_files to "{role}"')
    conn.close()
    client.force_login(admin_user)
    page = _save(client, landscape["Test"], dsn).content.decode()
    assert "member of pg_read_server_files" in page


def test_connection_parameters_that_read_the_consoles_files_are_refused(client, landscape, admin_user):
    client.force_login(admin_user)
    for extra in [
        "passfile=/etc/shadow",
        "service=lifetime",
        "sslkey=/root/.ssh/id_rsa",
        "options='-c log_statement=all'",
    ]:
        page = _save(client, landscape["Test"], f"host=127.0.0.1 dbname=x user=y {extra}").content.decode()
        assert "may not set" in page, extra


def test_only_infra_admins_test_a_connection_that_is_not_saved(client, landscape, manager):
    client.force_login(manager)
    test_env = landscape["Test"]
    typed = client.post(
        reverse("environments:test_connection", args=[test_env.key]), {"app_db_dsn": "postgres://x@127.0.0.1:5432/y"}
    ).content.decode()
    assert "Only infra admins test a connection before it is saved" in typed
    saved = client.post(reverse("environments:test_connection", args=[test_env.key])).content.decode()
    assert "Connected to" in saved


class SilentPort:
    """A port that takes the connection and never answers, as a filtering firewall looks from here."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._hold, daemon=True)
        self.thread.start()

    def _hold(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_a_closed_port_and_a_silent_one_get_the_same_message_after_the_same_time():
    silent = SilentPort()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()  # nothing listens there: the connection is refused at once
    try:
        results = {}
        for name, port in (("closed", closed_port), ("silent", silent.port)):
            started = time.monotonic()
            check = services.check_connection(f"postgres://x@127.0.0.1:{port}/y", timeout_s=2)
            results[name] = (check.message.replace(str(port), "PORT"), time.monotonic() - started)
    finally:
        silent.close()
    assert results["closed"][0] == results["silent"][0]
    assert "no PostgreSQL server accepted the connection" in results["closed"][0]
    assert results["closed"][1] >= 1.9 and results["silent"][1] >= 1.9


def test_environments_saved_before_identities_were_kept_are_still_compared(landscape, admin_user):
    prod = landscape["Production"]
    Environment.objects.filter(pk=prod.pk).update(app_db_identity="")
    with pytest.raises(services.InvalidInput, match="another environment's application database"):
        services.save_environment(
            actor=Actor.person(admin_user),
            environment=landscape["Test"],
            data={"name": "Test", "order": 2},
            app_db_dsn=prod.app_db_dsn(),
        )
