#!/usr/bin/env bash
# A throw-away PostgreSQL server on loopback (initdb + pg_ctl in a state directory), the
# downstream of the label topic in tests and in docs/recipes/labels-into-postgres.md.
# See `pg.sh --help`.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/../.." && pwd)"

usage() {
    cat <<'EOF'
Usage: tools/postgres/pg.sh COMMAND [ARGS]

Run a PostgreSQL server of its own from the installed binaries (Debian: apt-get install
postgresql), listening on 127.0.0.1 only (no Unix socket), trust authentication for
127.0.0.1 only, one database and one superuser both named $PG_DB.

Commands:
  start    initdb on first use, start the server and wait until it accepts connections.
           Prints the connection URI (postgresql://USER@127.0.0.1:PORT/DB). Does nothing
           (exit 0) when this state directory's server already runs.
  stop     Stop it (pg_ctl stop -m fast). Does nothing when none is running.
  status   Exit 0 when running, 3 when not.
  psql     Run psql against it; the remaining arguments go to psql
           (e.g. `pg.sh psql -c 'select count(*) from tweet_labels'`).
  url      Print the JDBC URL (jdbc:postgresql://127.0.0.1:PORT/DB) for Kafka Connect.
  logs     Print the server log path and its last lines (LINES=<n>, default 100).
  help     Show this text (also -h, --help).

Environment:
  PG_PORT           TCP port on 127.0.0.1 (default 5433, so it does not meet a system
                    PostgreSQL on 5432).
  PG_STATE_DIR      Data directory and log (default <repo>/.cache/postgres/state-$PG_PORT).
  PG_DB             Database and superuser name (default sentistream).
  PG_BIN            Folder with initdb, pg_ctl and psql (default: the newest
                    /usr/lib/postgresql/*/bin, else the ones on PATH).
  PG_OS_USER        The account the server runs as when this script runs as root, since
                    PostgreSQL refuses to run as root (default postgres, Debian's). The
                    state directory is then owned by it, and every directory above it must
                    be searchable by it (a tmp dir of mode 0700 is not).
  PG_START_TIMEOUT  Seconds to wait for the server (default 60).

Data survive `stop`; remove PG_STATE_DIR to start from an empty database. fsync is off:
this server is for tests and demos, not for data you want to keep after a power cut.
EOF
}

die() {
    echo "pg.sh: $*" >&2
    exit 1
}

case "${1:-help}" in
    help | -h | --help)
        usage
        exit 0
        ;;
esac

PG_PORT="${PG_PORT:-5433}"
[[ "${PG_PORT}" =~ ^[0-9]+$ ]] || die "PG_PORT must be a number, got '${PG_PORT}'"
PG_DB="${PG_DB:-sentistream}"
[[ "${PG_DB}" =~ ^[a-z_][a-z0-9_]*$ ]] || die "PG_DB must be a plain lower-case SQL name, got '${PG_DB}'"
PG_OS_USER="${PG_OS_USER:-postgres}"
PG_START_TIMEOUT="${PG_START_TIMEOUT:-60}"

STATE_DIR="${PG_STATE_DIR:-${REPO_ROOT}/.cache/postgres/state-${PG_PORT}}"
case "${STATE_DIR}" in
    /*) ;;
    *) STATE_DIR="${PWD}/${STATE_DIR}" ;;
esac
STATE_DIR="${STATE_DIR%/}"
DATA_DIR="${STATE_DIR}/data"
LOG_FILE="${STATE_DIR}/postgres.log"

find_bin() {
    if [[ -n "${PG_BIN:-}" ]]; then
        [[ -x "${PG_BIN}/pg_ctl" ]] || die "PG_BIN=${PG_BIN} has no pg_ctl"
        echo "${PG_BIN}"
        return 0
    fi
    local dir
    # Debian keeps the server binaries off PATH, one folder per major version.
    dir="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null |
        sort -V | tail -n 1)"
    if [[ -n "${dir}" && -x "${dir}/pg_ctl" ]]; then
        echo "${dir}"
        return 0
    fi
    if command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v pg_ctl)"
        return 0
    fi
    die "PostgreSQL server binaries not found (Debian: apt-get install postgresql), or set PG_BIN"
}

BIN="$(find_bin)"

# Run a server-side command as the account that owns the data: this user, or PG_OS_USER when
# we are root. From / so that a cwd the account cannot enter does not matter.
as_owner() {
    if [[ "$(id -u)" == 0 ]]; then
        (cd / && runuser -u "${PG_OS_USER}" -- "$@")
    else
        (cd / && "$@")
    fi
}

port_open() {
    # shellcheck disable=SC2016  # $1 expands in the child bash, on purpose
    timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" >/dev/null 2>&1
}

running() {
    [[ -f "${DATA_DIR}/postmaster.pid" ]] && as_owner "${BIN}/pg_ctl" status -D "${DATA_DIR}" >/dev/null 2>&1
}

psql_cmd() {
    PGCONNECT_TIMEOUT=5 "${BIN}/psql" -X -h 127.0.0.1 -p "${PG_PORT}" -U "${PG_DB}" "$@"
}

prepare_state_dir() {
    mkdir -p "${STATE_DIR}"
    if [[ "$(id -u)" == 0 ]]; then
        id -u "${PG_OS_USER}" >/dev/null 2>&1 ||
            die "running as root, and there is no '${PG_OS_USER}' account to run PostgreSQL as (set PG_OS_USER)"
        chown "${PG_OS_USER}:" "${STATE_DIR}"
        as_owner test -w "${STATE_DIR}" ||
            die "${PG_OS_USER} cannot write ${STATE_DIR}: a directory above it is not searchable by that account; choose a PG_STATE_DIR it can reach (e.g. under /tmp in a directory of mode 0755)"
    fi
}

write_config() {
    # Rewritten on every start, included from postgresql.conf (see init_data).
    as_owner tee "${DATA_DIR}/sentistream.conf" >/dev/null <<EOF
# Written by tools/postgres/pg.sh on every start; edits are overwritten.
listen_addresses = '127.0.0.1'
port = ${PG_PORT}
unix_socket_directories = ''
max_connections = 30
shared_buffers = 32MB
# A throw-away server for tests and demos: durability traded for speed.
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
log_min_messages = warning
log_connections = off
EOF
    # Only 127.0.0.1, trust: no passwords to hand around, nothing reachable from outside.
    as_owner tee "${DATA_DIR}/pg_hba.conf" >/dev/null <<'EOF'
# Written by tools/postgres/pg.sh: TCP from 127.0.0.1 only, trusted. No Unix socket, no ::1.
# TYPE  DATABASE  USER  ADDRESS        METHOD
host    all       all   127.0.0.1/32   trust
EOF
}

init_data() {
    [[ -f "${DATA_DIR}/PG_VERSION" ]] && return 0
    echo "pg.sh: initdb ${DATA_DIR} (superuser ${PG_DB})" >&2
    rm -rf "${DATA_DIR}"
    if ! as_owner "${BIN}/initdb" -D "${DATA_DIR}" -U "${PG_DB}" --auth=trust -E UTF8 \
        --locale=C.UTF-8 --no-instructions >"${STATE_DIR}/initdb.log" 2>&1; then
        cat "${STATE_DIR}/initdb.log" >&2
        die "initdb failed (log above)"
    fi
    echo "include_if_exists = 'sentistream.conf'" | as_owner tee -a "${DATA_DIR}/postgresql.conf" >/dev/null
}

cmd_start() {
    local uri="postgresql://${PG_DB}@127.0.0.1:${PG_PORT}/${PG_DB}"
    if running; then
        echo "pg.sh: already running on 127.0.0.1:${PG_PORT} (state ${STATE_DIR})" >&2
        echo "${uri}"
        return 0
    fi
    if port_open "${PG_PORT}"; then
        die "port ${PG_PORT} on 127.0.0.1 is in use by another process; set PG_PORT"
    fi
    prepare_state_dir
    init_data
    write_config
    local started=${SECONDS}
    if ! as_owner "${BIN}/pg_ctl" start -D "${DATA_DIR}" -l "${LOG_FILE}" -w \
        -t "${PG_START_TIMEOUT}" >/dev/null; then
        tail -n 30 "${LOG_FILE}" >&2 || true
        die "PostgreSQL did not start on 127.0.0.1:${PG_PORT} (log: ${LOG_FILE})"
    fi
    # The superuser's own database, made once.
    if [[ -z "$(psql_cmd -d postgres -Atc "select 1 from pg_database where datname = '${PG_DB}'")" ]]; then
        psql_cmd -d postgres -qc "create database ${PG_DB}" >/dev/null ||
            die "could not create database ${PG_DB}"
    fi
    echo "pg.sh: PostgreSQL $("${BIN}/pg_ctl" --version | sed -n "s/.*(PostgreSQL) \([^ ]*\).*/\1/p") ready in ~$((SECONDS - started)) s on 127.0.0.1:${PG_PORT} (state ${STATE_DIR})" >&2
    echo "${uri}"
}

cmd_stop() {
    if ! running; then
        echo "pg.sh: not running (port ${PG_PORT}, state ${STATE_DIR})"
        return 0
    fi
    as_owner "${BIN}/pg_ctl" stop -D "${DATA_DIR}" -m fast -w -t 30 >/dev/null ||
        as_owner "${BIN}/pg_ctl" stop -D "${DATA_DIR}" -m immediate -w -t 30 >/dev/null
    echo "pg.sh: stopped (port ${PG_PORT})"
}

cmd_status() {
    if running; then
        echo "pg.sh: running on 127.0.0.1:${PG_PORT}, state ${STATE_DIR}"
        return 0
    fi
    echo "pg.sh: not running on 127.0.0.1:${PG_PORT} (state ${STATE_DIR})"
    return 3
}

cmd_logs() {
    echo "${LOG_FILE}"
    if [[ -f "${LOG_FILE}" ]]; then
        tail -n "${LINES:-100}" "${LOG_FILE}"
    fi
}

main() {
    local cmd="${1:-help}"
    shift || true
    case "${cmd}" in
        start) cmd_start ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        psql) psql_cmd -d "${PG_DB}" "$@" ;;
        url) echo "jdbc:postgresql://127.0.0.1:${PG_PORT}/${PG_DB}" ;;
        logs) cmd_logs ;;
        *)
            usage >&2
            exit 2
            ;;
    esac
}

main "$@"
