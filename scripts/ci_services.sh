#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on 127.0.0.1 for the tests marked `postgres`.
#
#   eval "$(bash scripts/ci_services.sh)"        # start; exports CALMCALL_TEST_DATABASE_URL
#   bash scripts/ci_services.sh stop             # stop the one started above (uses CALMCALL_TEST_PGDATA)
#
# Installs Debian's postgresql package when no initdb is found. Only the `export` lines go
# to stdout; progress goes to stderr. The cluster lives in a temp dir, listens on 127.0.0.1
# only (a free port), trusts local connections, and holds one database, calmcall_test.
set -euo pipefail

log() { echo "ci_services: $*" >&2; }

find_bin() {
  local name=$1 d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/$name" ] && { echo "$d/$name"; return 0; }
  done
  command -v "$name" 2>/dev/null || return 1
}

as_owner() {  # run as the cluster owner (postgres when we are root)
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ "${1:-start}" = stop ]; then
  if [ -n "${CALMCALL_TEST_PGDATA:-}" ] && [ -d "$CALMCALL_TEST_PGDATA" ]; then
    as_owner "$(find_bin pg_ctl)" -D "$CALMCALL_TEST_PGDATA/data" -m fast -w stop >&2 || true
    rm -rf "$CALMCALL_TEST_PGDATA"
    log "stopped"
  fi
  exit 0
fi

if ! find_bin initdb >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    log "PostgreSQL is not installed and we are not root; install Debian's postgresql package"
    exit 1
  fi
  log "installing PostgreSQL (Debian package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi
INITDB=$(find_bin initdb)
PG_CTL=$(find_bin pg_ctl)
CREATEDB=$(find_bin createdb)
PG_ISREADY=$(find_bin pg_isready)

PGDATA=$(mktemp -d "${TMPDIR:-/tmp}/calmcall-pg.XXXXXX")
SOCKDIR="$PGDATA/sock"
mkdir -p "$SOCKDIR"
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  chown -R postgres: "$PGDATA"
fi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')

log "initdb in $PGDATA"
as_owner "$INITDB" -D "$PGDATA/data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$PGDATA/initdb.log" 2>&1 \
  || as_owner "$INITDB" -D "$PGDATA/data" -U postgres --auth=trust --encoding=UTF8 --no-locale >"$PGDATA/initdb.log" 2>&1 \
  || { cat "$PGDATA/initdb.log" >&2; exit 1; }
log "starting on 127.0.0.1:$PORT"
as_owner "$PG_CTL" -D "$PGDATA/data" -l "$PGDATA/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $PORT -k $SOCKDIR -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
  start >&2 || { cat "$PGDATA/server.log" >&2; exit 1; }
for _ in $(seq 1 60); do
  "$PG_ISREADY" -h 127.0.0.1 -p "$PORT" -q && break
  sleep 0.5
done
as_owner "$CREATEDB" -h 127.0.0.1 -p "$PORT" -U postgres calmcall_test >&2
log "ready: database calmcall_test"
echo "export CALMCALL_TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:$PORT/calmcall_test"
echo "export CALMCALL_TEST_PGDATA=$PGDATA"
