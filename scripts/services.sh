#!/usr/bin/env bash
# Make PostgreSQL and Redis available and print the environment to reach them (SPEC §4).
#
#   eval "$(scripts/services.sh up)"     # prints: export DATABASE_URL=…; export REDIS_URL=…
#   scripts/services.sh down             # stops the throwaway instances this script started
#
# Order of preference, for each service:
#   1. DATABASE_URL / REDIS_URL already set (and reachable)
#   2. a server already listening on 127.0.0.1 (PG_PORT, default 5432 / REDIS_PORT, default 6379)
#   3. a throwaway instance under .run/ started from the installed server binaries
#   4. install the server with apt (when root), then 3
#   5. otherwise: say how to provide it, and fail
# Human messages go to stderr; only export lines go to stdout.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN="$ROOT/.run"
PG_PORT="${PG_PORT:-5432}"
REDIS_PORT="${REDIS_PORT:-6379}"
PG_RUN_PORT="${PG_RUN_PORT:-55432}"
REDIS_RUN_PORT="${REDIS_RUN_PORT:-56379}"
DB_NAME="${DB_NAME:-cliniko_xero}"

say() { printf '%s\n' "$*" >&2; }

pg_reachable() {  # $1 = URL
  command -v psql >/dev/null 2>&1 || return 1
  psql "$1" -Atqc 'select 1' >/dev/null 2>&1
}

redis_reachable() {  # $1 host $2 port
  if command -v redis-cli >/dev/null 2>&1; then
    [ "$(redis-cli -h "$1" -p "$2" ping 2>/dev/null)" = "PONG" ]
  else
    (exec 3<>"/dev/tcp/$1/$2" && printf 'PING\r\n' >&3 && head -c 5 <&3 | grep -q PONG) 2>/dev/null
  fi
}

pg_bin() {  # the directory holding initdb/pg_ctl, if any
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r) ; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    return 1
  fi
  say "Installing $* with apt-get…"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

as_pg_user() {  # initdb and postgres refuse to run as root
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir "$RUN" --shell /usr/sbin/nologin postgres
    chown -R postgres "$RUN/pg"
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

start_throwaway_pg() {
  local bin
  bin="$(pg_bin)" || { apt_install postgresql postgresql-client && bin="$(pg_bin)"; } || {
    say "PostgreSQL is not available. Set DATABASE_URL, start a server on 127.0.0.1:$PG_PORT, or install postgresql."
    exit 1
  }
  mkdir -p "$RUN/pg"
  if [ ! -f "$RUN/pg/data/PG_VERSION" ]; then
    say "Creating a throwaway PostgreSQL cluster in .run/pg…"
    as_pg_user "$bin/initdb" -D "$RUN/pg/data" -U postgres -A trust -E UTF8 >/dev/null
  fi
  if ! as_pg_user "$bin/pg_ctl" -D "$RUN/pg/data" status >/dev/null 2>&1; then
    say "Starting throwaway PostgreSQL on 127.0.0.1:$PG_RUN_PORT…"
    as_pg_user "$bin/pg_ctl" -D "$RUN/pg/data" -l "$RUN/pg/log" -w -t 60 \
      -o "-p $PG_RUN_PORT -k $RUN/pg -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  fi
  echo "postgresql://postgres@127.0.0.1:$PG_RUN_PORT"
}

start_throwaway_redis() {
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server || {
    say "Redis is not available. Set REDIS_URL, start a server on 127.0.0.1:$REDIS_PORT, or install redis-server."
    exit 1
  }
  mkdir -p "$RUN/redis"
  if ! redis_reachable 127.0.0.1 "$REDIS_RUN_PORT"; then
    say "Starting throwaway Redis on 127.0.0.1:$REDIS_RUN_PORT…"
    redis-server --port "$REDIS_RUN_PORT" --bind 127.0.0.1 --daemonize yes --save "" --appendonly no \
      --dir "$RUN/redis" --pidfile "$RUN/redis/redis.pid" --logfile "$RUN/redis/log" >&2
    for _ in $(seq 50); do redis_reachable 127.0.0.1 "$REDIS_RUN_PORT" && break; sleep 0.1; done
  fi
  echo "redis://127.0.0.1:$REDIS_RUN_PORT"
}

up() {
  local pg_base redis_base
  command -v psql >/dev/null 2>&1 || apt_install postgresql-client || true
  if [ -n "${DATABASE_URL:-}" ]; then
    pg_reachable "${DATABASE_URL/postgres:\/\//postgresql://}" || { say "DATABASE_URL is set but does not answer."; exit 1; }
    echo "export DATABASE_URL='$DATABASE_URL'"
    echo "export TEST_DATABASE_URL='${TEST_DATABASE_URL:-${DATABASE_URL%/*}/${DB_NAME}_test}'"
  else
    if pg_reachable "postgresql://postgres@127.0.0.1:$PG_PORT/postgres"; then
      pg_base="postgresql://postgres@127.0.0.1:$PG_PORT"
      say "Using PostgreSQL on 127.0.0.1:$PG_PORT."
    else
      pg_base="$(start_throwaway_pg)"
    fi
    psql "$pg_base/postgres" -Atqc "select 1 from pg_database where datname='$DB_NAME'" | grep -q 1 \
      || psql "$pg_base/postgres" -qc "create database \"$DB_NAME\"" >&2
    echo "export DATABASE_URL='$pg_base/$DB_NAME'"
    echo "export TEST_DATABASE_URL='${TEST_DATABASE_URL:-$pg_base/${DB_NAME}_test}'"
  fi
  if [ -n "${REDIS_URL:-}" ]; then
    echo "export REDIS_URL='$REDIS_URL'"
    redis_base="${REDIS_URL%/*}"
  else
    if redis_reachable 127.0.0.1 "$REDIS_PORT"; then
      redis_base="redis://127.0.0.1:$REDIS_PORT"
      say "Using Redis on 127.0.0.1:$REDIS_PORT."
    else
      redis_base="$(start_throwaway_redis)"
    fi
    echo "export REDIS_URL='$redis_base/0'"
  fi
  # Tests use their own Redis database index, never the demo's.
  echo "export TEST_REDIS_URL='${TEST_REDIS_URL:-$redis_base/15}'"
}

down() {
  local bin
  if [ -f "$RUN/pg/data/postmaster.pid" ] && bin="$(pg_bin)"; then
    as_pg_user "$bin/pg_ctl" -D "$RUN/pg/data" -m fast stop >/dev/null 2>&1 && say "Stopped throwaway PostgreSQL."
  fi
  if [ -f "$RUN/redis/redis.pid" ]; then
    kill "$(cat "$RUN/redis/redis.pid")" 2>/dev/null && say "Stopped throwaway Redis."
    rm -f "$RUN/redis/redis.pid"
  fi
  return 0
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) say "usage: $0 up|down"; exit 2 ;;
esac
