# The two commands of the README are `make up` and `make test`.
.PHONY: up test stop reset lint format bootstrap bench

up:
	scripts/up.sh

test:
	scripts/test.sh

stop:
	scripts/stop.sh

reset:
	scripts/reset.sh

bootstrap:
	scripts/bootstrap.sh

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/lint-imports

format:
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

# Long runs and big data (a 10-million-row table among them): never part of the test suite.
# One table of targets, floors and measurements; BENCH_ARGS="--quick", "--only continue,switch"...
bench:
	scripts/bootstrap.sh --for-bench
	LIFETIME_DEV=true .venv/bin/python benchmarks/run_all.py --write-readme $(BENCH_ARGS)
