"""The console's Celery app: stage worker (queue ``stages``) and beat."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lifetime.settings")

app = Celery("lifetime")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Each room of the deployments app keeps its own tasks module.
app.autodiscover_tasks(
    ["deployments.stages", "deployments.plans", "deployments.notifications", "environments"], related_name="tasks"
)
