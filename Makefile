# The two commands of the README are `make up` and `make test`.
.PHONY: up test stop lint format bootstrap

up:
	scripts/up.sh

test:
	scripts/test.sh

stop:
	scripts/stop.sh

bootstrap:
	scripts/bootstrap.sh

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/lint-imports

format:
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .
