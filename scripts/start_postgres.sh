#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster for tests and print its SQLAlchemy URL.
#
#   scripts/start_postgres.sh DIR [PORT]      # default port 5433
#   scripts/start_postgres.sh --stop DIR
#
# Uses Debian's binaries (/usr/lib/postgresql/*/bin). The cluster (data, log, unix socket)
# lives in DIR; authentication is "trust" on 127.0.0.1 only. PostgreSQL refuses to run as
# root, so as root the cluster belongs to (and runs as) the "postgres" user.
# Export the printed URL as CONCNER_TEST_POSTGRES_URL for tests/test_store*.py.
set -euo pipefail

stop=0
if [[ "${1:-}" == "--stop" ]]; then stop=1; shift; fi
dir="${1:?usage: start_postgres.sh [--stop] DIR [PORT]}"
port="${2:-5433}"
db="concner_test"

bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
if [[ -z "$bindir" || ! -x "$bindir/initdb" ]]; then
  echo "start_postgres.sh: no PostgreSQL binaries under /usr/lib/postgresql/*/bin;" \
       "install them with: apt-get install postgresql" >&2
  exit 1
fi

mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
data="$dir/data"
as_pg=()
if [[ "$(id -u)" == "0" ]]; then
  chown postgres:postgres "$dir"
  as_pg=(runuser -u postgres --)
fi

if [[ $stop == 1 ]]; then
  "${as_pg[@]}" "$bindir/pg_ctl" -D "$data" -m fast -w stop
  exit 0
fi

if [[ ! -f "$data/PG_VERSION" ]]; then
  "${as_pg[@]}" "$bindir/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 \
    --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || {
      echo "start_postgres.sh: initdb failed, see $dir/initdb.log" >&2; exit 1; }
fi

if ! "${as_pg[@]}" "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
  "${as_pg[@]}" "$bindir/pg_ctl" -D "$data" -l "$dir/postgres.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50" \
    start >/dev/null || { echo "start_postgres.sh: server did not start, see $dir/postgres.log" >&2; exit 1; }
fi

if ! "${as_pg[@]}" "$bindir/psql" -h "$dir" -p "$port" -U postgres -tAc \
     "SELECT 1 FROM pg_database WHERE datname = '$db'" postgres | grep -q 1; then
  "${as_pg[@]}" "$bindir/createdb" -h "$dir" -p "$port" -U postgres "$db"
fi

echo "postgresql+psycopg2://postgres@127.0.0.1:$port/$db"
