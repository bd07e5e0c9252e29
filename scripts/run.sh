#!/usr/bin/env bash
# Serve Hark on http://127.0.0.1:8000 with gunicorn (after scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/gunicorn -c gunicorn.conf.py wsgi:app
