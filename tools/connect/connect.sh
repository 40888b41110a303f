#!/usr/bin/env bash
# Apache Kafka Connect (standalone worker) with Debezium's JDBC sink connector, run straight
# from the Maven Central jars like tools/kafka/kafka.sh runs the broker: no Docker, no tarball.
# See `connect.sh --help`.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/../.." && pwd)"
POM="${SCRIPT_DIR}/pom.xml"

usage() {
    cat <<'EOF'
Usage: tools/connect/connect.sh COMMAND [CONNECTOR_FILE...]

Run a Kafka Connect standalone worker from the Maven Central jars, its REST API on
127.0.0.1 only, with Debezium's JDBC sink connector (and the PostgreSQL driver) on its
plugin.path.

Commands:
  fetch    Download the Connect jars into .cache/connect/<kafka version>/lib and the
           connector into .cache/connect/<kafka version>/plugins/ once (needs mvn).
  start [CONNECTOR_FILE...]
           Fetch if needed, start the worker in the background with the given connector
           configs (JSON {"name": ..., "config": {...}} as the REST API takes, or
           .properties), and wait until the REST API answers and every connector and its
           tasks are RUNNING. A connector or task that FAILED stops the worker and prints
           its error. Does nothing (exit 0) when this state directory's worker runs.
  stop     Stop the worker started by this script (SIGTERM, then SIGKILL after
           CONNECT_STOP_TIMEOUT seconds). Does nothing when none is running.
  status   Print whether the worker runs and each connector's state. Exit 0 when
           running, 3 when not.
  logs     Print the log file path and its last lines (LINES=<n>, default 100).
  help     Show this text (also -h, --help).

Environment:
  CONNECT_BOOTSTRAP_SERVERS  The Kafka cluster (default 127.0.0.1:${KAFKA_PORT:-9092}).
  CONNECT_REST_PORT          REST API port on 127.0.0.1 (default 8083).
  CONNECT_STATE_DIR          Worker config, standalone offsets file, logs and pid file
                             (default <repo>/.cache/connect/state-$CONNECT_REST_PORT).
  CONNECT_START_TIMEOUT      Seconds to wait for the worker and its connectors (default 120).
  CONNECT_STOP_TIMEOUT       Seconds to wait after SIGTERM before SIGKILL (default 30).
  CONNECT_HEAP_OPTS          JVM heap flags (default "-Xms64m -Xmx256m").
  CONNECT_LOG_LEVEL          Root log level (default INFO).
  KAFKA_VERSION              Connect version; default tools/connect/pom.xml's
                             <kafka.version>, which must equal the broker's.
  JAVA                       Java 17+ executable (default: java on PATH).

The worker's default converters: keys StringConverter, values JsonConverter with schemas
enabled (the labels' --output-format connect-json). A sink connector's consumer offsets are
committed to Kafka (group connect-<connector name>); the standalone offsets file in the state
directory holds source connectors' offsets. Remove CONNECT_STATE_DIR for a fresh worker.
EOF
}

die() {
    echo "connect.sh: $*" >&2
    exit 1
}

pom_property() {
    sed -n "s:.*<$1>\\([^<]*\\)</$1>.*:\\1:p" "${POM}" | head -n 1
}

case "${1:-help}" in
    help | -h | --help)
        usage
        exit 0
        ;;
esac

# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------
KAFKA_VERSION="${KAFKA_VERSION:-$(pom_property kafka.version)}"
[[ -n "${KAFKA_VERSION}" ]] || die "cannot read <kafka.version> from ${POM}"
DEBEZIUM_VERSION="$(pom_property debezium.version)"
[[ -n "${DEBEZIUM_VERSION}" ]] || die "cannot read <debezium.version> from ${POM}"
CONNECT_REST_PORT="${CONNECT_REST_PORT:-8083}"
[[ "${CONNECT_REST_PORT}" =~ ^[0-9]+$ ]] ||
    die "CONNECT_REST_PORT must be a number, got '${CONNECT_REST_PORT}'"
CONNECT_BOOTSTRAP_SERVERS="${CONNECT_BOOTSTRAP_SERVERS:-127.0.0.1:${KAFKA_PORT:-9092}}"
CONNECT_START_TIMEOUT="${CONNECT_START_TIMEOUT:-120}"
CONNECT_STOP_TIMEOUT="${CONNECT_STOP_TIMEOUT:-30}"
CONNECT_HEAP_OPTS="${CONNECT_HEAP_OPTS:--Xms64m -Xmx256m}"
CONNECT_LOG_LEVEL="${CONNECT_LOG_LEVEL:-INFO}"
JAVA="${JAVA:-java}"

CACHE_DIR="${REPO_ROOT}/.cache/connect"
VERSION_DIR="${CACHE_DIR}/${KAFKA_VERSION}"
LIB_DIR="${VERSION_DIR}/lib"
PLUGIN_PATH="${VERSION_DIR}/plugins"
PLUGIN_DIR="${PLUGIN_PATH}/debezium-connector-jdbc-${DEBEZIUM_VERSION}"

STATE_DIR="${CONNECT_STATE_DIR:-${CACHE_DIR}/state-${CONNECT_REST_PORT}}"
case "${STATE_DIR}" in
    /*) ;;
    *) STATE_DIR="${PWD}/${STATE_DIR}" ;; # an explicit relative path means relative to cwd
esac
STATE_DIR="${STATE_DIR%/}"
LOG_DIR="${STATE_DIR}/logs"
CONNECT_LOG="${LOG_DIR}/connect.log"
STDOUT_LOG="${LOG_DIR}/connect.out"
CONFIG_FILE="${STATE_DIR}/connect-standalone.properties"
LOG4J_FILE="${STATE_DIR}/log4j2.properties"
OFFSETS_FILE="${STATE_DIR}/connect.offsets"
PID_FILE="${STATE_DIR}/connect.pid"
REST="127.0.0.1:${CONNECT_REST_PORT}"

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
require_java() {
    command -v "${JAVA}" >/dev/null 2>&1 ||
        die "java not found; install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)"
    local version major
    version="$("${JAVA}" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n 1)"
    major="${version%%.*}"
    [[ "${major}" =~ ^[0-9]+$ && "${major}" -ge 17 ]] ||
        die "Kafka Connect ${KAFKA_VERSION} and Debezium ${DEBEZIUM_VERSION} need Java 17+, found '${version:-unknown}' (${JAVA})"
}

port_open() {
    # shellcheck disable=SC2016  # $1 expands in the child bash, on purpose
    timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" >/dev/null 2>&1
}

# GET http://127.0.0.1:$CONNECT_REST_PORT$1 -> the body on stdout; fails unless HTTP 200.
# Plain bash (/dev/tcp): no curl on a minimal machine.
rest_get() {
    local reply
    # shellcheck disable=SC2016  # $1, $2 expand in the child bash, on purpose
    reply="$(timeout 5 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n" "$2" >&3
        cat <&3
    ' _ "${CONNECT_REST_PORT}" "$1" 2>/dev/null)" || return 1
    [[ "${reply}" =~ ^HTTP/1\.[01]\ 200 ]] || return 1
    printf '%s\n' "${reply#*$'\r\n\r\n'}"
}

# Connector names the worker knows, one a line (from GET /connectors: ["a","b"]).
connector_names() {
    rest_get /connectors | tr -d '[]"' | tr ',' '\n' | sed '/^$/d'
}

# True when some server of CONNECT_BOOTSTRAP_SERVERS accepts TCP connections (the worker
# itself would wait a minute before saying it cannot reach Kafka).
bootstrap_reachable() {
    local server host port
    for server in ${CONNECT_BOOTSTRAP_SERVERS//,/ }; do
        server="${server#*://}"
        host="${server%:*}"
        port="${server##*:}"
        host="${host#[}"
        host="${host%]}"
        # shellcheck disable=SC2016  # $1, $2 expand in the child bash, on purpose
        if timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "${host}" "${port}" >/dev/null 2>&1; then
            return 0
        fi
    done
    return 1
}

running_pid() {
    [[ -f "${PID_FILE}" ]] || return 1
    local pid
    pid="$(tr -dc '0-9' <"${PID_FILE}")"
    [[ -n "${pid}" ]] || return 1
    kill -0 "${pid}" 2>/dev/null || return 1
    # Guard against a recycled pid: it must be our worker, with our config file.
    if [[ -r "/proc/${pid}/cmdline" ]]; then
        tr '\0' ' ' <"/proc/${pid}/cmdline" | grep -qF -- "${CONFIG_FILE}" || return 1
    fi
    echo "${pid}"
}

write_config() {
    mkdir -p "${LOG_DIR}"
    cat >"${CONFIG_FILE}" <<EOF
# Written by tools/connect/connect.sh on every start; edits are overwritten.
bootstrap.servers=${CONNECT_BOOTSTRAP_SERVERS}
# Defaults for connectors that name no converters of their own. Labels: the key is the tweet
# id as plain UTF-8, the value Kafka Connect's JSON with an embedded schema.
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
value.converter.schemas.enable=true
# Standalone: source offsets in a local file; sink tasks commit consumer offsets to Kafka
# this often (default 60 s).
offset.storage.file.filename=${OFFSETS_FILE}
offset.flush.interval.ms=2000
plugin.path=${PLUGIN_PATH}
# Every plugin here (Kafka's own, Debezium's) has ServiceLoader manifests: finding them that
# way takes 1 s; the default (hybrid_warn) also scans every class by reflection, 16-18 s on
# two shared cores.
plugin.discovery=service_load
listeners=http://127.0.0.1:${CONNECT_REST_PORT}
rest.advertised.host.name=127.0.0.1
rest.advertised.port=${CONNECT_REST_PORT}
EOF
    cat >"${LOG4J_FILE}" <<EOF
# Written by tools/connect/connect.sh. Connect logs through slf4j 1.7 -> log4j2.
status = warn
name = sentistream-connect
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${CONNECT_LOG}
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = ${CONNECT_LOG_LEVEL}
rootLogger.appenderRef.file.ref = FILE
# Every client's whole config at INFO is hundreds of lines a task.
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
logger.common.name = org.apache.kafka.common
logger.common.level = WARN
logger.reflections.name = org.reflections
logger.reflections.level = ERROR
logger.hibernate.name = org.hibernate
logger.hibernate.level = WARN
logger.c3p0.name = com.mchange
logger.c3p0.level = WARN
EOF
}

jvm_opts() {
    # shellcheck disable=SC2206  # CONNECT_HEAP_OPTS is a list of flags on purpose
    JVM_OPTS=(${CONNECT_HEAP_OPTS}
        # Two shared cores: one GC thread, and the C1 compiler only (starts in half the
        # CPU time; a test or demo worker never runs long enough for C2 to pay off).
        -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:CICompilerCount=1
        -Djava.awt.headless=true
        "-Dlog4j2.configurationFile=${LOG4J_FILE}"
        "-Dkafka.logs.dir=${LOG_DIR}")
}

show_log_tail() {
    local n="${1:-50}" f
    for f in "${STDOUT_LOG}" "${CONNECT_LOG}"; do
        if [[ -s "${f}" ]]; then
            echo "----- last ${n} lines of ${f} -----" >&2
            tail -n "${n}" "${f}" >&2
        fi
    done
}

# 0: the connector and all its tasks RUNNING (and at least one task); 1: not yet;
# 2: something FAILED (its status JSON, with the trace, on stdout).
connector_state() {
    local status
    status="$(rest_get "/connectors/$1/status")" || return 1
    if [[ "${status}" == *'"state":"FAILED"'* ]]; then
        printf '%s\n' "${status}"
        return 2
    fi
    local total running
    total="$(grep -o '"state":"[A-Z]*"' <<<"${status}" | wc -l)"
    running="$(grep -o '"state":"RUNNING"' <<<"${status}" | wc -l)"
    ((total >= 2 && running == total))
}

# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------
mvn_fetch() { # profile, output directory, jar that must be there afterwards
    local profile="$1" dest="$2" expect="$3"
    local tmp="${dest}.tmp.$$" mvn_log="${VERSION_DIR}/fetch-${profile}.log"
    rm -rf "${tmp}"
    mkdir -p "${VERSION_DIR}"
    if ! mvn -B -q -Dstyle.color=never -f "${POM}" -P "${profile}" \
        "-Dkafka.version=${KAFKA_VERSION}" "-DoutputDirectory=${tmp}" \
        dependency:copy-dependencies >"${mvn_log}" 2>&1; then
        rm -rf "${tmp}"
        tail -n 50 "${mvn_log}" >&2 || true
        die "mvn could not fetch the ${profile} jars (log: ${mvn_log})"
    fi
    [[ -f "${tmp}/${expect}" ]] || die "mvn finished but ${tmp}/${expect} is missing"
    if [[ -f "${dest}/.complete" ]]; then
        rm -rf "${tmp}" # another fetch finished first
        return 0
    fi
    rm -rf "${dest}"
    mv "${tmp}" "${dest}"
    date -u +%Y-%m-%dT%H:%M:%SZ >"${dest}/.complete"
    echo "connect.sh: $(find "${dest}" -name '*.jar' | wc -l) jars ($(du -sh "${dest}" | cut -f1)) in ${dest}" >&2
}

cmd_fetch() {
    if [[ -f "${LIB_DIR}/.complete" && -f "${PLUGIN_DIR}/.complete" ]]; then
        return 0
    fi
    command -v mvn >/dev/null 2>&1 ||
        die "mvn not found; install Maven to fetch the Connect jars (Debian: apt-get install maven)"
    if [[ ! -f "${LIB_DIR}/.complete" ]]; then
        echo "connect.sh: fetching Kafka Connect ${KAFKA_VERSION} jars from Maven Central..." >&2
        mvn_fetch runtime "${LIB_DIR}" "connect-runtime-${KAFKA_VERSION}.jar"
    fi
    if [[ ! -f "${PLUGIN_DIR}/.complete" ]]; then
        echo "connect.sh: fetching Debezium JDBC sink ${DEBEZIUM_VERSION} from Maven Central..." >&2
        mkdir -p "${PLUGIN_PATH}"
        # One connector version on plugin.path at a time: an older folder would shadow it.
        find "${PLUGIN_PATH}" -mindepth 1 -maxdepth 1 -name 'debezium-connector-jdbc-*' \
            ! -name "$(basename "${PLUGIN_DIR}")*" -exec rm -rf {} +
        mvn_fetch jdbc-sink "${PLUGIN_DIR}" "debezium-connector-jdbc-${DEBEZIUM_VERSION}.jar"
    fi
}

cmd_start() {
    local files=() f pid
    for f in "$@"; do
        [[ -r "${f}" ]] || die "connector config '${f}' not found"
        case "${f}" in
            /*) files+=("${f}") ;;
            *) files+=("${PWD}/${f}") ;;
        esac
    done
    if pid="$(running_pid)"; then
        echo "connect.sh: already running (pid ${pid}), REST API on http://${REST}" >&2
        ((${#files[@]} == 0)) ||
            echo "connect.sh: connector files are read at start only; stop first to load ${files[*]}" >&2
        echo "http://${REST}"
        return 0
    fi
    if port_open "${CONNECT_REST_PORT}"; then
        die "port ${CONNECT_REST_PORT} is in use by another process; set CONNECT_REST_PORT"
    fi
    require_java
    bootstrap_reachable ||
        die "no Kafka broker answers on ${CONNECT_BOOTSTRAP_SERVERS} (start one: tools/kafka/kafka.sh start; or set CONNECT_BOOTSTRAP_SERVERS)"
    cmd_fetch
    write_config
    jvm_opts
    rm -f "${PID_FILE}"
    echo "===== $(date -u +%Y-%m-%dT%H:%M:%SZ) starting Kafka Connect ${KAFKA_VERSION} on ${REST} (Kafka ${CONNECT_BOOTSTRAP_SERVERS})" >>"${STDOUT_LOG}"
    local launcher=()
    if command -v setsid >/dev/null 2>&1; then
        launcher=(setsid) # own session: a Ctrl-C in the caller's terminal does not reach it
    fi
    "${launcher[@]}" "${JAVA}" "${JVM_OPTS[@]}" -cp "${LIB_DIR}/*" \
        org.apache.kafka.connect.cli.ConnectStandalone "${CONFIG_FILE}" "${files[@]}" \
        </dev/null >>"${STDOUT_LOG}" 2>&1 &
    pid=$!
    echo "${pid}" >"${PID_FILE}"

    local started=${SECONDS} deadline=$((SECONDS + CONNECT_START_TIMEOUT)) names=() name state
    while ((SECONDS < deadline)); do
        if ! kill -0 "${pid}" 2>/dev/null; then
            rm -f "${PID_FILE}"
            show_log_tail 60
            die "Connect worker ${pid} exited during startup"
        fi
        if rest_get / >/dev/null; then
            mapfile -t names < <(connector_names || true)
            if ((${#names[@]} >= ${#files[@]})); then
                local all=1
                for name in "${names[@]}"; do
                    state=0
                    connector_state "${name}" >"${STATE_DIR}/failed.json" || state=$?
                    if ((state == 2)); then
                        echo "connect.sh: connector ${name} FAILED:" >&2
                        cat "${STATE_DIR}/failed.json" >&2
                        echo >&2
                        show_log_tail 40
                        cmd_stop >&2 || true
                        die "connector ${name} failed to start (log: ${CONNECT_LOG})"
                    fi
                    ((state == 0)) || all=0
                done
                if ((all)); then
                    rm -f "${STATE_DIR}/failed.json"
                    echo "connect.sh: Kafka Connect ${KAFKA_VERSION} ready in ~$((SECONDS - started)) s (pid ${pid}, connectors: ${names[*]:-none}, state ${STATE_DIR})" >&2
                    echo "http://${REST}"
                    return 0
                fi
            fi
        fi
        sleep 0.5
    done
    show_log_tail 60
    cmd_stop >&2 || true
    die "Connect did not get ready (REST API on ${REST}, connectors RUNNING) within ${CONNECT_START_TIMEOUT} s"
}

cmd_stop() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "${PID_FILE}"
        echo "connect.sh: not running (REST port ${CONNECT_REST_PORT}, state ${STATE_DIR})"
        return 0
    fi
    kill -TERM "${pid}" 2>/dev/null || true
    local deadline=$((SECONDS + CONNECT_STOP_TIMEOUT))
    while kill -0 "${pid}" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if kill -0 "${pid}" 2>/dev/null; then
        echo "connect.sh: pid ${pid} still alive after ${CONNECT_STOP_TIMEOUT} s, sending SIGKILL" >&2
        kill -KILL "${pid}" 2>/dev/null || true
        while kill -0 "${pid}" 2>/dev/null; do
            sleep 0.1
        done
    fi
    rm -f "${PID_FILE}"
    echo "connect.sh: stopped (pid ${pid})"
}

cmd_status() {
    local pid name status
    if ! pid="$(running_pid)"; then
        echo "connect.sh: not running on ${REST} (state ${STATE_DIR})"
        return 3
    fi
    echo "connect.sh: running (pid ${pid}), REST API on http://${REST}, state ${STATE_DIR}"
    while read -r name; do
        status="$(rest_get "/connectors/${name}/status" || echo '?')"
        echo "  ${name}: $(grep -o '"state":"[A-Z]*"' <<<"${status}" | cut -d'"' -f4 | paste -sd' ' -)" \
            "(connector, then each task)"
    done < <(connector_names || true)
}

cmd_logs() {
    echo "${CONNECT_LOG}"
    if [[ -f "${CONNECT_LOG}" ]]; then
        tail -n "${LINES:-100}" "${CONNECT_LOG}"
    else
        echo "connect.sh: no log yet (${CONNECT_LOG})" >&2
    fi
}

main() {
    local cmd="${1:-help}"
    shift || true
    case "${cmd}" in
        fetch) cmd_fetch ;;
        start) cmd_start "$@" ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        logs) cmd_logs ;;
        *)
            usage >&2
            exit 2
            ;;
    esac
}

main "$@"
