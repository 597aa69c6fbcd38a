"""Whether the Redis the console is given keeps what it is handed.

Redis carries the console's work: stage tasks, the messages to the agents (a revert waiting in a
stopped agent's queue), their answers. PostgreSQL stays the source of truth, but a Redis that
evicts keys under memory pressure, or forgets everything when it restarts, drops such messages
silently. The project's own Redis (scripts/bootstrap.sh) runs with an append-only file and
``maxmemory-policy noeviction``; workers and the web process say at start when theirs may not.
"""

from __future__ import annotations

from typing import Any

import redis

EVICTING = "maxmemory-policy"


def durability_problems(url: str, *, client: Any = None) -> list[str]:
    """Sentences for people: what in this Redis's settings may lose the console's messages. Empty
    when it keeps them. A Redis that cannot be asked (down, or its ACL refuses INFO) says so."""
    try:
        conn = client or redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        memory = conn.info("memory")
        persistence = conn.info("persistence")
    except redis.RedisError as exc:
        return [f"Redis could not be asked whether it keeps its data ({exc.__class__.__name__})."]
    problems = []
    policy = str(memory.get("maxmemory_policy", "unknown"))
    if policy != "noeviction":
        problems.append(
            f"Redis may evict keys ({EVICTING} is {policy}): queued stages, agent messages and their "
            "answers can vanish under memory pressure. Set maxmemory-policy noeviction."
        )
    if not persistence.get("aof_enabled"):
        problems.append(
            "Redis keeps no append-only file (appendonly no): a restart loses queued stages and the "
            "reverts waiting for stopped agents. Set appendonly yes."
        )
    return problems
