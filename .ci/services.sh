#!/usr/bin/env bash
# The services the scale-out test (tests/e2e) needs, on 127.0.0.1 only: Redis (the Celery broker) and
# PostgreSQL (Dagster's instance storage), from Debian's packages.
#
#   .ci/services.sh start   install redis-server / postgresql when missing (apt-get update first), then start
#                           both under $FOCUS_SERVICES_DIR unless they already run there; prints their URLs
#   .ci/services.sh stop    stop both (a no-op when they are not running)
#   .ci/services.sh install only install what is missing (CI, before the tests start their own servers)
#
# Settings (environment): FOCUS_SERVICES_DIR (default .data/services in the checkout), FOCUS_REDIS_PORT
# (default 6390), FOCUS_POSTGRES_PORT (default 5440). PostgreSQL refuses to run as root: as root its folder
# belongs to the `postgres` user (created by the package) and it runs as that user. Exit 3: a server is
# missing and cannot be installed (no apt-get, or the install failed).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="$(realpath -m "${FOCUS_SERVICES_DIR:-.data/services}")"
REDIS_PORT="${FOCUS_REDIS_PORT:-6390}"
PG_PORT="${FOCUS_POSTGRES_PORT:-5440}"
PG_DATA="$DIR/postgres"

say() { echo "services: $*"; }

pg_bin() {  # the folder of initdb / pg_ctl: on PATH, else Debian's versioned folder
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

install_missing() {
  local packages=()
  command -v redis-server >/dev/null 2>&1 || packages+=(redis-server)
  [ -n "$(pg_bin)" ] || packages+=(postgresql)
  [ ${#packages[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" -ne 0 ]; then
    say "missing ${packages[*]} and cannot install them (apt-get as root needed)" >&2
    exit 3
  fi
  say "installing ${packages[*]}"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}"; } >&2; then
    say "apt-get install ${packages[*]} failed" >&2
    exit 3
  fi
}

as_pg_owner() {  # run a PostgreSQL command as the owner of its data folder
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_redis() {
  mkdir -p "$DIR"
  if [ -f "$DIR/redis.pid" ] && kill -0 "$(cat "$DIR/redis.pid")" 2>/dev/null; then
    say "redis already running (pid $(cat "$DIR/redis.pid"))"
  else
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$DIR" --pidfile "$DIR/redis.pid" \
      --logfile "$DIR/redis.log" --daemonize yes --save '' --appendonly no
    for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
    redis-cli -p "$REDIS_PORT" ping >/dev/null || { say "redis did not start: see $DIR/redis.log" >&2; exit 1; }
    say "started redis (pid $(cat "$DIR/redis.pid"))"
  fi
  say "redis: redis://127.0.0.1:$REDIS_PORT/0"
}

start_postgres() {
  local bin; bin="$(pg_bin)"
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    mkdir -p "$PG_DATA"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$PG_DATA"
    as_pg_owner "$bin/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 >/dev/null
    say "created a PostgreSQL cluster in $PG_DATA"
  fi
  if as_pg_owner "$bin/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then
    say "postgres already running"
  else
    as_pg_owner "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/server.log" -w -t 60 start \
      -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DATA" >/dev/null
    say "started postgres ($bin)"
  fi
  if ! psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='dagster'" \
      | grep -q 1; then
    psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE dagster" >/dev/null
    say "created database dagster"
  fi
  say "postgres: postgresql://postgres@127.0.0.1:$PG_PORT/dagster"
}

stop_all() {
  local bin; bin="$(pg_bin)"
  if [ -f "$DIR/redis.pid" ] && kill -0 "$(cat "$DIR/redis.pid")" 2>/dev/null; then
    kill "$(cat "$DIR/redis.pid")"
    say "stopped redis"
  fi
  if [ -n "$bin" ] && [ -f "$PG_DATA/PG_VERSION" ] && as_pg_owner "$bin/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then
    as_pg_owner "$bin/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null
    say "stopped postgres"
  fi
}

case "${1:-start}" in
  start) install_missing; start_redis; start_postgres ;;
  stop) stop_all ;;
  install) install_missing; say "redis-server and PostgreSQL present" ;;
  *) echo "usage: $0 start|stop|install" >&2; exit 2 ;;
esac
