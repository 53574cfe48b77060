#!/usr/bin/env bash
# Install everything, build the index, start the Streamlit app on http://localhost:8501
set -euo pipefail
cd "$(dirname "$0")/.."
# Install only when the requirements (or the installer) changed since the last install by
# this script: a no-op `pip install` still asks the package index about every package
# (~10 s). CALMCALL_FORCE_SETUP=1 installs anyway.
STAMP=.venv/.calmcall-app-setup
WANT=$(cat requirements.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ "${CALMCALL_FORCE_SETUP:-0}" = "1" ] || [ ! -x .venv/bin/python ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  bash scripts/setup.sh requirements.txt
  echo "$WANT" > "$STAMP"
fi
.venv/bin/python -m calmcall index
# The server loads the models and the index as soon as it starts (app.py starts the warm-up
# when Streamlit imports it), so the first visitor does not wait for them.
exec .venv/bin/streamlit run app.py --server.headless true --browser.gatherUsageStats false "$@"
