#!/usr/bin/env bash
# Install and start a private PostgreSQL server for an MLflow tracking server
# (Debian/Ubuntu, as root, no systemd): a fresh cluster in its own folder, on
# 127.0.0.1, with a database `mlflow` owned by the role `mlflow` (password
# `mlflow`).
#
# Used by tests/test_mlflow_server.py and usable by hand for trying the team
# route of docs/pipeline.md ("MLflow tracking server"):
#   sudo ci/mlflow/setup_postgres.sh            # install (if needed), initialise, start
#   sudo ci/mlflow/setup_postgres.sh --stop     # stop it
# Settings (environment): PG_DIR (default /var/lib/jointseg-ci/postgres: the
# cluster, its socket and its log; wiped at every start), PG_PORT (default 55432).
# On success the last line of stdout is the database URI for
# `mlflow server --backend-store-uri`.
# Exit status: 0 = the server is up; 3 = cannot install (not root or no
# apt-get) - the caller should skip; anything else = failure.
set -euo pipefail

PG_DIR=${PG_DIR:-/var/lib/jointseg-ci/postgres}
PG_PORT=${PG_PORT:-55432}
DATA=$PG_DIR/data

pg_bin() {  # the newest installed server's bin folder (Debian keeps it out of PATH)
    local initdb
    initdb=$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1)
    [[ -n $initdb ]] && dirname "$initdb"
    return 0
}

as_postgres() {
    su -s /bin/sh postgres -c "$*"
}

if [[ $(id -u) -ne 0 ]]; then
    echo "setup_postgres: must run as root (to install packages and run the server as postgres)" >&2
    exit 3
fi

if [[ ${1:-} == --stop ]]; then
    bin=$(pg_bin)
    if [[ -n $bin && -s $DATA/postmaster.pid ]]; then
        as_postgres "$bin/pg_ctl -D '$DATA' -m fast -w stop" >/dev/null
    fi
    exit 0
fi

if [[ -z $(pg_bin) ]] || ! id postgres >/dev/null 2>&1; then
    if ! command -v apt-get >/dev/null; then
        echo "setup_postgres: PostgreSQL is not installed and apt-get is not available" >&2
        exit 3
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # The package's own cluster is not used (nor started: no systemd in containers).
    apt-get install -y -qq --no-install-recommends postgresql postgresql-client >/dev/null
fi
bin=$(pg_bin)

# --- a fresh cluster: stop an earlier one in this folder, wipe, initialise -------
if [[ -s $DATA/postmaster.pid ]]; then
    as_postgres "$bin/pg_ctl -D '$DATA' -m fast -w stop" >/dev/null 2>&1 || true
fi
rm -rf "$PG_DIR"
mkdir -p "$DATA"
chown -R postgres:postgres "$PG_DIR"
chmod 700 "$DATA"
as_postgres "$bin/initdb -D '$DATA' -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8" >/dev/null

# --- start on 127.0.0.1 (socket in PG_DIR: no /run/postgresql needed) ------------
as_postgres "$bin/pg_ctl -D '$DATA' -l '$PG_DIR/server.log' -w -t 60 \
    -o \"-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1\" start" >/dev/null

psql_admin() {
    as_postgres "'$bin/psql' -h '$PG_DIR' -p $PG_PORT -U postgres -v ON_ERROR_STOP=1 -q -c \"$1\""
}
psql_admin "CREATE ROLE mlflow LOGIN PASSWORD 'mlflow'"
psql_admin "CREATE DATABASE mlflow OWNER mlflow"

echo "setup_postgres: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT (data $DATA)"
echo "postgresql://mlflow:mlflow@127.0.0.1:$PG_PORT/mlflow"
