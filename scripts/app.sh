#!/usr/bin/env bash
# Install everything, build the index, start the Streamlit app on http://localhost:8501
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements.txt
.venv/bin/python -m calmcall index
exec .venv/bin/streamlit run app.py --server.headless true --browser.gatherUsageStats false "$@"
