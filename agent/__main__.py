"""``python -m agent``: the same as the ``lifetime-agent`` command."""

from agent.cli import main

raise SystemExit(main())
