#!/usr/bin/env bash
# Install everything (dev extras too), then run the test suite and the quick eval with thresholds.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements-dev.txt
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/python -m ruff check calmcall tests eval bench app.py
.venv/bin/python -m pytest -q "$@"
.venv/bin/python eval/run.py all --check
