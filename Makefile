# The two commands of the README, and the checks beside them.
#   make run        set up and serve (gunicorn behind nginx)
#   make test       set up, then `make check` and the whole suite in 2 processes (what .ci/run runs)
#   make check      lint (ruff) and types (mypy): seconds; settings in pyproject.toml
#   make test-fast  the suite without the browser tests and the slow ones
#   make e2e        only the browser tests (headless Chromium)
# Only scripts/setup.sh installs: check, test-fast and e2e run it once on a clean clone.
.PHONY: run test check test-fast e2e

DEV_STAMP := .venv/.requirements-dev.sha256

run:
	bash scripts/setup.sh
	bash scripts/run.sh

test:
	HARK_DEV=1 HARK_EXTRA_APT="chromium redis-server postgresql" bash scripts/setup.sh
	$(MAKE) --no-print-directory check
	bash scripts/test.sh -n 2 --dist loadfile

check: $(DEV_STAMP)       # both run, so one pass shows every finding
	.venv/bin/ruff check .; lint=$$?; .venv/bin/mypy; types=$$?; exit $$((lint || types))

test-fast: $(DEV_STAMP)
	bash scripts/test.sh -m "not e2e and not slow"

e2e: $(DEV_STAMP)
	bash scripts/test.sh -m e2e

$(DEV_STAMP): requirements.txt requirements-dev.txt
	HARK_DEV=1 bash scripts/setup.sh
