#!/usr/bin/env bash
# Install everything (dev extras too), start the real services the tests use (PostgreSQL,
# a Chroma server, Debian's Chromium for the browser tests, the Ralph LRS and scorm-again for
# the LMS tests), run the test suite, then the
# quick eval with thresholds. Services run on 127.0.0.1 only and are stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements-dev.txt
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/python -m ruff check calmcall tests eval bench app.py views

cleanup() {
  [ -n "${CHROMA_PID:-}" ] && kill "$CHROMA_PID" 2>/dev/null || true
  bash scripts/ci_services.sh stop || true
  [ -f scripts/ci_lms.sh ] && bash scripts/ci_lms.sh stop || true
  [ -n "${CHROMA_DIR:-}" ] && rm -rf "$CHROMA_DIR"
}
trap cleanup EXIT

# PostgreSQL (Debian package) on a free loopback port -> CALMCALL_TEST_DATABASE_URL
PG_ENV=$(bash scripts/ci_services.sh)
eval "$PG_ENV"

# Chroma server on a free loopback port -> CALMCALL_TEST_CHROMA_URL
CHROMA_PORT=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
CHROMA_DIR=$(mktemp -d)
.venv/bin/chroma run --path "$CHROMA_DIR" --host 127.0.0.1 --port "$CHROMA_PORT" >/dev/null 2>&1 &
CHROMA_PID=$!
export CALMCALL_TEST_CHROMA_URL="http://127.0.0.1:$CHROMA_PORT"

# Debian's Chromium for the end-to-end browser test
[ -f scripts/ci_browser.sh ] && bash scripts/ci_browser.sh
# Debian's espeak-ng and sox: the voice tests make their audio at test time
[ -f scripts/ci_voice.sh ] && bash scripts/ci_voice.sh
# A real LRS (Ralph, own venv) and the SCORM runtime + XSDs (npm) -> CALMCALL_TEST_LRS_URL, …
if [ -f scripts/ci_lms.sh ]; then
  LMS_ENV=$(bash scripts/ci_lms.sh)
  eval "$LMS_ENV"
fi

.venv/bin/python -m pytest -q "$@"
.venv/bin/python eval/run.py all --check
.venv/bin/python eval/ask_eval.py ci --check
# role-play: agreement with a coach on the frozen blind calls (floors just under what we measure)
.venv/bin/python eval/roleplay_eval.py --check --min-agreement 0.6 --min-spearman 0.7
