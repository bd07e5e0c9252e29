#!/usr/bin/env bash
# Run the whole test suite (after scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/python -m pytest "$@"
