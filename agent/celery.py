"""The front-end agent's Celery app: ``celery -A agent worker -Q <front-end queue> -c 1``.

It runs on a front-end server with only Celery, Redis and HTTP access to the console: it never
imports Django nor touches the console's database. Its tasks take everything as arguments.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.worker.consumer import Consumer

from agent import config


class AgentConsumer(Consumer):
    """The worker's consumer without mingle, gossip and heartbeat, whatever the command line says:
    they broadcast to and listen to every worker on the broker, unsigned. An agent only consumes its
    own queue, so that the broker's access rules can give its host that queue and nothing else."""

    def __init__(self, *args: Any, worker_options: dict[str, Any] | None = None, **kwargs: Any) -> None:
        options = dict(worker_options or {}, without_mingle=True, without_gossip=True, without_heartbeat=True)
        super().__init__(*args, worker_options=options, **kwargs)


settings = config.load()
# The agent's own folder: it keeps its releases and its ledger there (agent.guard).
settings.releases_root.mkdir(parents=True, exist_ok=True)

# Not the current app: a process that also has the console's app (a test, a script) keeps that one.
# Every task is a GuardedTask: it runs only what the console signed for this front-end.
app = Celery("agent", include=["agent.tasks"], set_as_current=False, task_cls="agent.guard:GuardedTask")
app.conf.update(
    broker_url=settings.broker_url,
    result_backend=settings.broker_url,
    # Same reliability as the console's workers: a message is acknowledged only once its task has
    # run, a worker that dies mid-task gives its message back, and nobody holds messages it has not
    # started (so a stopped agent leaves its queue for the next one).
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=3600,
    broker_connection_retry_on_startup=True,
    broker_transport_options={"visibility_timeout": 3600},
    worker_hijack_root_logger=False,
    # A front-end only runs what is sent to its own queue (-Q); nothing goes to a default queue.
    task_create_missing_queues=True,
    # No broadcast remote control (shutdown, add_consumer, ...) and no events: anyone who can write
    # to the broker could send those, and they carry no signature. The console talks to agents with
    # signed tasks only.
    worker_enable_remote_control=False,
    worker_send_task_events=False,
    task_send_sent_event=False,
    worker_consumer="agent.celery:AgentConsumer",
)
