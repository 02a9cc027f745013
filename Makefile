# The two commands a fresh machine needs (see README):
#   make demo   set up and start the demo store
#   make test   set up and run the whole test suite
.PHONY: demo test lint bench

demo:
	@scripts/setup.sh runtime
	.venv/bin/shoprank serve --demo

test:
	@scripts/setup.sh dev
	.venv/bin/python -m pytest

lint:
	@scripts/setup.sh dev
	.venv/bin/ruff check .
