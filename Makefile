# The two commands of the README.
.PHONY: run test

run:
	bash scripts/setup.sh
	bash scripts/run.sh

test:
	HARK_EXTRA_APT="chromium redis-server postgresql" bash scripts/setup.sh
	bash scripts/test.sh
