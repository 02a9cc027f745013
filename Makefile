# The two commands a fresh machine needs (see README.md and docs/getting-started.md):
#   make demo   set up and start the demo store
#   make test   set up and run the whole test suite
#   make test-fast   the quick tests only (pytest -m "not slow"; tests/conftest.py says what is slow)
.PHONY: demo test test-fast lint typecheck docs bench

demo:
	@scripts/setup.sh runtime
	.venv/bin/shoprank serve --demo

test:
	@scripts/setup.sh dev
	.venv/bin/python -m pytest

test-fast:
	@scripts/setup.sh dev
	.venv/bin/python -m pytest -m "not slow"

lint:
	@scripts/setup.sh dev
	.venv/bin/ruff check .

# mypy over the eight packages, strict ([tool.mypy] in pyproject.toml); CI runs it before the tests.
typecheck:
	@scripts/setup.sh dev
	.venv/bin/mypy

# The documentation site (mkdocs.yml, docs/) into site/; --strict turns every warning (a broken link or anchor,
# a page missing from the nav, a missing include) into a failure. CI runs it after the type check.
docs:
	@scripts/setup.sh dev
	.venv/bin/mkdocs build --strict

# CPU reranking benchmark (docs/performance.md): FlagReranker vs our scorer fp32 / INT8, one run.
.PHONY: bench-rerank-cpu
bench-rerank-cpu:
	@scripts/setup.sh runtime
	.venv/bin/python bench/rerank_cpu.py
