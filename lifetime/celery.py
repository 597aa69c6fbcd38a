"""The console's Celery app: stage worker (queue ``stages``) and beat."""

import logging
import os

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lifetime.settings")

logger = logging.getLogger("lifetime.redis")
app = Celery("lifetime")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Each room of the deployments app keeps its own tasks module.
app.autodiscover_tasks(
    ["deployments.stages", "deployments.plans", "deployments.notifications", "environments"], related_name="tasks"
)


@worker_ready.connect
def _say_whether_redis_keeps_its_data(sender: object = None, **kwargs: object) -> None:
    """At start, in the worker's log: a Redis that may evict keys or forget them on restart."""
    from django.conf import settings

    from core.redis_durability import durability_problems

    for problem in durability_problems(settings.REDIS_URL):
        logger.warning("%s", problem)
