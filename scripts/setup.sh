#!/usr/bin/env bash
# Set up a fresh machine for Hark: a virtualenv with requirements.txt (and with
# HARK_DEV=1, as `make test` and `make check` set it, requirements-dev.txt: ruff, mypy, pytest-xdist) and, where
# apt is available and we are root, the optional Debian packages (extra TTS
# voices for the default data set, nginx to front gunicorn in scripts/run.sh, and
# what HARK_EXTRA_APT adds: for the tests Chromium, Redis and PostgreSQL).
# Idempotent and quick on a second run.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    .venv/bin/pip install --quiet --upgrade pip
    .venv/bin/pip install --quiet -r requirements.txt
    echo "$want" > "$stamp"
fi
if [ "${HARK_DEV:-0}" = 1 ]; then
    dev_stamp=.venv/.requirements-dev.sha256
    dev_want=$(sha256sum requirements-dev.txt | cut -d' ' -f1)
    if [ "$(cat "$dev_stamp" 2>/dev/null)" != "$dev_want" ]; then
        .venv/bin/pip install --quiet -r requirements-dev.txt
        echo "$dev_want" > "$dev_stamp"
    fi
    touch "$dev_stamp"      # the Makefile's sign that the tools are there and current
fi

# Optional system packages: never required, used when present.
apt_packages="flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts nginx ${HARK_EXTRA_APT:-}"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    missing=""
    for p in $apt_packages; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
    if [ -n "$missing" ]; then
        echo "installing optional Debian packages:$missing"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null) \
            || echo "warning: could not install$missing (optional; continuing)"
    fi
fi
