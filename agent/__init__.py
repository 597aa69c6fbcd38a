"""The front-end agent: one Celery worker per front-end server, consuming that front-end's queue.

``agent.celery`` holds the Celery app (found by ``celery -A agent``); ``agent.releases`` is what it
does on disk. Importing this package alone loads neither Celery nor its configuration, so the console
may use ``agent.releases.release_name`` without an agent token.
"""
