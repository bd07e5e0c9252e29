#!/usr/bin/env bash
# Serve Hark on http://127.0.0.1:8000 (after scripts/setup.sh): database migrations,
# the startup check, then the training-queue consumer and gunicorn side by side.
# Ctrl-C (or SIGTERM to this script) stops both; if either dies, the other is stopped too.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD TF_CPP_MIN_LOG_LEVEL=2

.venv/bin/flask --app wsgi db upgrade
.venv/bin/flask --app wsgi check          # repairs what a crash left; says how to create the admin

.venv/bin/python -m webapp.training.worker &
consumer=$!
.venv/bin/gunicorn -c gunicorn.conf.py wsgi:app &
server=$!

stop() {
    trap - INT TERM HUP
    kill -INT "$consumer" 2>/dev/null || true   # graceful: a training stops after its batch
    kill -TERM "$server" 2>/dev/null || true
    wait "$consumer" "$server" 2>/dev/null || true
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM HUP

echo "Hark: http://${HARK_BIND:-127.0.0.1:8000} (training queue consumer pid $consumer, gunicorn pid $server)"
status=0
wait -n "$consumer" "$server" || status=$?
echo "a Hark process ended (status $status): stopping the other" >&2
stop
exit "$status"
