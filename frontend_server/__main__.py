"""``python -m frontend_server``: the same as the ``lifetime-frontend-server`` command."""

from frontend_server.cli import main

raise SystemExit(main())
