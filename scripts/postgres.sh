#!/usr/bin/env bash
# Start a throw-away PostgreSQL for the call-record tests, on loopback only.
#
#   eval "$(bash scripts/postgres.sh start)"   # exports CALLAGENT_TEST_DATABASE_URL, PG_TEST_DIR
#   bash scripts/postgres.sh stop "$PG_TEST_DIR"
#
# As root it installs Debian's `postgresql` package when missing and runs the
# server as the `postgres` user; as another user it runs it as that user. The
# cluster lives in a temporary directory and listens on 127.0.0.1 only.
# Prints nothing to stdout (and exits 0) when PostgreSQL cannot be had; the
# tests that need it then skip with the reason.
set -euo pipefail
action="${1:-start}"

pg_bin() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
  done
  return 1
}

as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

if [ "$action" = stop ]; then
  dir="${2:-${PG_TEST_DIR:-}}"
  [ -n "$dir" ] && [ -d "$dir/data" ] || exit 0
  bin="$(pg_bin)" || exit 0
  as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  exit 0
fi

if ! bin="$(pg_bin)"; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing Debian's postgresql for the call-record tests" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  fi
  bin="$(pg_bin)" || { echo "PostgreSQL not available: its tests will be skipped" >&2; exit 0; }
fi

dir="$(mktemp -d /tmp/callagent-pg.XXXXXX)"
chmod 755 "$dir"
[ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
port="$(free_port)"
as_owner "$bin/initdb" -D "$dir/data" -U callagent --auth=trust -E UTF8 >/dev/null
as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $dir" \
  start >/dev/null
as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U callagent callagent_test
echo "export PG_TEST_DIR=$dir"
echo "export CALLAGENT_TEST_DATABASE_URL=postgresql+psycopg://callagent@127.0.0.1:$port/callagent_test"
