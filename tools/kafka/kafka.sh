#!/usr/bin/env bash
# A real single-node Apache Kafka broker (KRaft, combined broker+controller) for tests and the
# local demo, run straight from the Maven Central jars: no Docker, no tarball.
# See `kafka.sh --help`.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/../.." && pwd)"
POM="${SCRIPT_DIR}/pom.xml"

usage() {
    cat <<'EOF'
Usage: tools/kafka/kafka.sh COMMAND

Run a single-node Apache Kafka broker (KRaft mode, broker+controller in one JVM) from the
Maven Central jars, listening on 127.0.0.1 only.

Commands:
  fetch    Download the broker jars once into .cache/kafka/<version>/lib (needs mvn).
  start    Fetch if needed, format storage on first use, start the broker in the
           background and wait until it answers Kafka requests. Prints the bootstrap
           address. Does nothing (exit 0) when a broker already answers on the port.
  stop     Stop the broker started by this script (SIGTERM, then SIGKILL after
           KAFKA_STOP_TIMEOUT seconds). Does nothing when none is running.
  status   Print whether the broker runs. Exit 0 when running, 3 when not.
  logs     Print the log file path and its last lines (LINES=<n>, default 100).
  help     Show this text (also -h, --help).

Environment:
  KAFKA_PORT             PLAINTEXT listener port (default 9092).
  KAFKA_CONTROLLER_PORT  KRaft controller listener port (default KAFKA_PORT+1).
  KAFKA_SASL_SSL_PORT    If set, also a SASL_SSL listener (SCRAM-SHA-512 over TLS) on this
                         port, beside the plaintext one. On first use a throw-away CA, a
                         broker certificate (127.0.0.1, localhost) and a client certificate
                         are made with openssl into $KAFKA_STATE_DIR/tls, and the SCRAM user
                         is created when the storage is formatted (so set it before the
                         first start of a state directory).
  KAFKA_SSL_PORT         If set, also an SSL listener that requires a client certificate
                         signed by that CA (mTLS), on this port.
  KAFKA_SCRAM_USER       SCRAM user created at format time (default sentistream).
  KAFKA_SCRAM_PASSWORD   Its password (default: random). $KAFKA_STATE_DIR/tls/client.env
                         then holds the SENTISTREAM_* variables a client of the SASL_SSL
                         listener needs (`set -a; . .../tls/client.env; set +a`).
  KAFKA_ACL_USER         If set (with KAFKA_SASL_SSL_PORT), the broker authorizes every
                         request with ACLs (StandardAuthorizer): the plaintext listener, the
                         SCRAM user and the mTLS client are super users, and this second
                         SCRAM user (same password, created at format time) may do only what
                         ACLs grant it.
  KAFKA_STATE_DIR        Config, data, logs and pid file
                         (default <repo>/.cache/kafka/state-$KAFKA_PORT).
  KAFKA_START_TIMEOUT    Seconds to wait for the broker to answer (default 60).
  KAFKA_STOP_TIMEOUT     Seconds to wait after SIGTERM before SIGKILL (default 30).
  KAFKA_VERSION          Broker version; default read from tools/kafka/pom.xml
                         (<kafka.version>), which must match the apache/kafka image tag.
  KAFKA_HEAP_OPTS        JVM heap flags (default "-Xms256m -Xmx512m").
  JAVA                   Java 17+ executable (default: java on PATH).

Data survive `stop`; remove KAFKA_STATE_DIR to start from an empty broker.
EOF
}

die() {
    echo "kafka.sh: $*" >&2
    exit 1
}

pom_kafka_version() {
    sed -n 's:.*<kafka\.version>\([^<]*\)</kafka\.version>.*:\1:p' "${POM}" | head -n 1
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
KAFKA_VERSION="${KAFKA_VERSION:-$(pom_kafka_version)}"
[[ -n "${KAFKA_VERSION}" ]] || die "cannot read <kafka.version> from ${POM}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
[[ "${KAFKA_PORT}" =~ ^[0-9]+$ ]] || die "KAFKA_PORT must be a number, got '${KAFKA_PORT}'"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
[[ "${KAFKA_CONTROLLER_PORT}" =~ ^[0-9]+$ ]] ||
    die "KAFKA_CONTROLLER_PORT must be a number, got '${KAFKA_CONTROLLER_PORT}'"
[[ "${KAFKA_CONTROLLER_PORT}" != "${KAFKA_PORT}" ]] ||
    die "KAFKA_CONTROLLER_PORT must differ from KAFKA_PORT (${KAFKA_PORT})"
KAFKA_SASL_SSL_PORT="${KAFKA_SASL_SSL_PORT:-}"
KAFKA_SSL_PORT="${KAFKA_SSL_PORT:-}"
for _port_var in KAFKA_SASL_SSL_PORT KAFKA_SSL_PORT; do
    [[ -z "${!_port_var}" || "${!_port_var}" =~ ^[0-9]+$ ]] ||
        die "${_port_var} must be a number, got '${!_port_var}'"
done
KAFKA_SCRAM_USER="${KAFKA_SCRAM_USER:-sentistream}"
KAFKA_ACL_USER="${KAFKA_ACL_USER:-}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-60}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
JAVA="${JAVA:-java}"

CACHE_DIR="${REPO_ROOT}/.cache/kafka"
VERSION_DIR="${CACHE_DIR}/${KAFKA_VERSION}"
LIB_DIR="${VERSION_DIR}/lib"
LIB_MARKER="${LIB_DIR}/.complete"

STATE_DIR="${KAFKA_STATE_DIR:-${CACHE_DIR}/state-${KAFKA_PORT}}"
case "${STATE_DIR}" in
    /*) ;;
    *) STATE_DIR="${PWD}/${STATE_DIR}" ;; # an explicit relative path means relative to cwd
esac
STATE_DIR="${STATE_DIR%/}"
DATA_DIR="${STATE_DIR}/data"
LOG_DIR="${STATE_DIR}/logs"
SERVER_LOG="${LOG_DIR}/server.log"
STDOUT_LOG="${LOG_DIR}/kafka.out"
CONFIG_FILE="${STATE_DIR}/server.properties"
LOG4J_FILE="${STATE_DIR}/log4j2.properties"
PID_FILE="${STATE_DIR}/kafka.pid"
TLS_DIR="${STATE_DIR}/tls"
BOOTSTRAP="127.0.0.1:${KAFKA_PORT}"

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
require_java() {
    command -v "${JAVA}" >/dev/null 2>&1 ||
        die "java not found; install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)"
    local version major
    version="$("${JAVA}" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n 1)"
    major="${version%%.*}"
    if [[ "${major}" == 1 ]]; then
        major="$(cut -d. -f2 <<<"${version}")"
    fi
    [[ "${major}" =~ ^[0-9]+$ && "${major}" -ge 17 ]] ||
        die "Kafka ${KAFKA_VERSION} needs Java 17+, found '${version:-unknown}' (${JAVA})"
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    # shellcheck disable=SC2016  # $1 expands in the child bash, on purpose
    timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" >/dev/null 2>&1
}

# True when a Kafka broker on 127.0.0.1:$1 answers an ApiVersions v0 request without error.
# Request: size=10 | api_key=18 | api_version=0 | correlation_id=42 | client_id=null.
# Response starts: size(4) | correlation_id(4) = 0x2a | error_code(2) = 0.
kafka_answers() {
    local reply
    # shellcheck disable=SC2016  # $1 expands in the child bash, on purpose
    reply="$(timeout 3 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "\x00\x00\x00\x0a\x00\x12\x00\x00\x00\x00\x00\x2a\xff\xff" >&3
        head -c 10 <&3 | od -An -tx1
    ' _ "$1" 2>/dev/null)" || return 1
    reply="$(tr -d ' \n' <<<"${reply}")"
    [[ "${reply:8:12}" == "0000002a0000" ]]
}

# Prints the pid of the broker this script started for STATE_DIR, if it is still alive.
running_pid() {
    [[ -f "${PID_FILE}" ]] || return 1
    local pid
    pid="$(tr -dc '0-9' <"${PID_FILE}")"
    [[ -n "${pid}" ]] || return 1
    kill -0 "${pid}" 2>/dev/null || return 1
    # Guard against a recycled pid: it must be our broker, with our config file.
    if [[ -r "/proc/${pid}/cmdline" ]]; then
        tr '\0' ' ' <"/proc/${pid}/cmdline" | grep -qF -- "${CONFIG_FILE}" || return 1
    fi
    echo "${pid}"
}

secured() {
    [[ -n "${KAFKA_SASL_SSL_PORT}" || -n "${KAFKA_SSL_PORT}" ]]
}

# A throw-away CA, a broker certificate for 127.0.0.1/localhost and a client certificate (for
# mTLS), made once per state directory; and client.env with what a client needs.
make_tls() {
    [[ -f "${TLS_DIR}/.complete" ]] && return 0
    command -v openssl >/dev/null 2>&1 || die "openssl not found; it makes the local TLS certificates"
    rm -rf "${TLS_DIR}"
    mkdir -p "${TLS_DIR}"
    chmod 700 "${TLS_DIR}"
    (
        cd "${TLS_DIR}"
        openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=sentistream local CA" \
            -keyout ca.key -out ca.pem
        openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout broker.key -out broker.csr
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >broker.ext
        openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
            -extfile broker.ext -out broker.pem
        openssl req -newkey rsa:2048 -nodes -subj "/CN=sentistream-client" \
            -keyout client.key -out client.csr
        openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
            -out client.pem
        # Kafka reads the broker's key and certificate chain from one PEM keystore.
        cat broker.key broker.pem ca.pem >broker-keystore.pem
        # A CA nobody trusts, for trying a client that does not trust the broker.
        openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=some other CA" \
            -keyout other-ca.key -out other-ca.pem
        rm -f ./*.csr ./*.srl broker.ext
    ) >>"${STDOUT_LOG}" 2>&1 || die "openssl could not make the certificates (see ${STDOUT_LOG})"
    local password="${KAFKA_SCRAM_PASSWORD:-$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')}"
    (
        umask 077
        cat >"${TLS_DIR}/client.env" <<EOF
# Written by tools/kafka/kafka.sh: what a client of the SASL_SSL listener needs.
SENTISTREAM_BOOTSTRAP_SERVERS=127.0.0.1:${KAFKA_SASL_SSL_PORT:-${KAFKA_PORT}}
SENTISTREAM_SECURITY_PROTOCOL=SASL_SSL
SENTISTREAM_SASL_MECHANISM=SCRAM-SHA-512
SENTISTREAM_SASL_USERNAME=${KAFKA_SCRAM_USER}
SENTISTREAM_SASL_PASSWORD=${password}
SENTISTREAM_SSL_CAFILE=${TLS_DIR}/ca.pem
EOF
    )
    date -u +%Y-%m-%dT%H:%M:%SZ >"${TLS_DIR}/.complete"
}

scram_password() {
    sed -n 's/^SENTISTREAM_SASL_PASSWORD=//p' "${TLS_DIR}/client.env"
}

write_config() {
    mkdir -p "${DATA_DIR}" "${LOG_DIR}"
    local listeners="PLAINTEXT://127.0.0.1:${KAFKA_PORT}"
    local protocols="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    if [[ -n "${KAFKA_SASL_SSL_PORT}" ]]; then
        listeners+=",SASL_SSL://127.0.0.1:${KAFKA_SASL_SSL_PORT}"
        protocols+=",SASL_SSL:SASL_SSL"
    fi
    if [[ -n "${KAFKA_SSL_PORT}" ]]; then
        listeners+=",SSL://127.0.0.1:${KAFKA_SSL_PORT}"
        protocols+=",SSL:SSL"
    fi
    cat >"${CONFIG_FILE}" <<EOF
# Written by tools/kafka/kafka.sh on every start; edits are overwritten.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${KAFKA_CONTROLLER_PORT}
listeners=${listeners},CONTROLLER://127.0.0.1:${KAFKA_CONTROLLER_PORT}
advertised.listeners=${listeners}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=${protocols}
log.dirs=${DATA_DIR}

num.partitions=1
auto.create.topics.enable=true
delete.topic.enable=true
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
# One partition instead of 50: the first consumer group then joins in well under a second.
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0

# Small and short-lived: this broker is for tests and the demo.
log.retention.hours=6
log.segment.bytes=67108864
log.retention.check.interval.ms=60000
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
EOF
    if secured; then
        cat >>"${CONFIG_FILE}" <<EOF

# TLS with the throw-away CA in ${TLS_DIR}.
ssl.keystore.type=PEM
ssl.keystore.location=${TLS_DIR}/broker-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=${TLS_DIR}/ca.pem
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.ssl.ssl.client.auth=required
EOF
    fi
    if secured && [[ -n "${KAFKA_ACL_USER}" ]]; then
        cat >>"${CONFIG_FILE}" <<EOF

# ACLs: everyone but ${KAFKA_ACL_USER} is a super user (ANONYMOUS: the plaintext and
# controller listeners; the mTLS client's principal is its certificate's subject).
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS;User:${KAFKA_SCRAM_USER};User:CN=sentistream-client
allow.everyone.if.no.acl.found=false
EOF
    fi
    cat >"${LOG4J_FILE}" <<EOF
# Written by tools/kafka/kafka.sh. Kafka 4 logs through log4j2 (slf4j 1.7 -> log4j-slf4j-impl).
status = warn
name = sentistream-kafka
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${SERVER_LOG}
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
EOF
}

jvm_opts() {
    # shellcheck disable=SC2206  # KAFKA_HEAP_OPTS is a list of flags on purpose
    JVM_OPTS=(${KAFKA_HEAP_OPTS}
        -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
        -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true
        "-Dlog4j2.configurationFile=${LOG4J_FILE}"
        "-Dkafka.logs.dir=${LOG_DIR}")
}

format_storage() {
    if [[ -f "${DATA_DIR}/meta.properties" ]]; then
        return 0
    fi
    # A cluster id is a base64url-encoded random 16-byte UUID without padding, the same
    # form `kafka-storage random-uuid` prints. It may start with "-": pass it as
    # --cluster-id=ID, or the option parser takes it for an option (1 start in 64 failed).
    local cluster_id
    cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    echo "kafka.sh: formatting ${DATA_DIR} (cluster id ${cluster_id})"
    jvm_opts
    local scram=()
    if secured; then
        # Kafka 4 creates SCRAM users at format time (no ZooKeeper to write them to later).
        scram=(--add-scram "SCRAM-SHA-512=[name=${KAFKA_SCRAM_USER},password=$(scram_password)]")
        if [[ -n "${KAFKA_ACL_USER}" ]]; then
            scram+=(--add-scram "SCRAM-SHA-512=[name=${KAFKA_ACL_USER},password=$(scram_password)]")
        fi
    fi
    if ! "${JAVA}" "${JVM_OPTS[@]}" -cp "${LIB_DIR}/*" kafka.tools.StorageTool format \
        --config "${CONFIG_FILE}" "--cluster-id=${cluster_id}" "${scram[@]}" \
        >>"${STDOUT_LOG}" 2>&1; then
        tail -n 50 "${STDOUT_LOG}" >&2 || true
        die "formatting storage failed (see ${STDOUT_LOG})"
    fi
}

show_log_tail() {
    local n="${1:-50}" f
    for f in "${STDOUT_LOG}" "${SERVER_LOG}"; do
        if [[ -s "${f}" ]]; then
            echo "----- last ${n} lines of ${f} -----" >&2
            tail -n "${n}" "${f}" >&2
        fi
    done
}

# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------
cmd_fetch() {
    if [[ -f "${LIB_MARKER}" ]]; then
        return 0
    fi
    command -v mvn >/dev/null 2>&1 ||
        die "mvn not found; install Maven to fetch the Kafka jars (Debian: apt-get install maven)"
    mkdir -p "${VERSION_DIR}"
    local tmp="${VERSION_DIR}/lib.tmp.$$" mvn_log="${VERSION_DIR}/fetch.log"
    rm -rf "${tmp}"
    echo "kafka.sh: fetching Apache Kafka ${KAFKA_VERSION} jars from Maven Central..." >&2
    if ! mvn -B -q -Dstyle.color=never -f "${POM}" \
        "-Dkafka.version=${KAFKA_VERSION}" "-DoutputDirectory=${tmp}" \
        dependency:copy-dependencies >"${mvn_log}" 2>&1; then
        rm -rf "${tmp}"
        tail -n 50 "${mvn_log}" >&2 || true
        die "mvn could not fetch org.apache.kafka:kafka_2.13:${KAFKA_VERSION} (log: ${mvn_log})"
    fi
    [[ -f "${tmp}/kafka_2.13-${KAFKA_VERSION}.jar" ]] ||
        die "mvn finished but ${tmp}/kafka_2.13-${KAFKA_VERSION}.jar is missing"
    if [[ -f "${LIB_MARKER}" ]]; then
        rm -rf "${tmp}" # another fetch finished first
        return 0
    fi
    rm -rf "${LIB_DIR}"
    mv "${tmp}" "${LIB_DIR}"
    date -u +%Y-%m-%dT%H:%M:%SZ >"${LIB_MARKER}"
    echo "kafka.sh: $(find "${LIB_DIR}" -name '*.jar' | wc -l) jars in ${LIB_DIR}" >&2
}

cmd_start() {
    local pid
    if pid="$(running_pid)"; then
        echo "kafka.sh: already running (pid ${pid}) on ${BOOTSTRAP}"
        echo "${BOOTSTRAP}"
        return 0
    fi
    if port_open "${KAFKA_PORT}"; then
        if kafka_answers "${KAFKA_PORT}"; then
            echo "kafka.sh: a Kafka broker not started by this script already answers on ${BOOTSTRAP}"
            echo "${BOOTSTRAP}"
            return 0
        fi
        die "port ${KAFKA_PORT} is in use by something that is not a Kafka broker"
    fi
    if port_open "${KAFKA_CONTROLLER_PORT}"; then
        die "controller port ${KAFKA_CONTROLLER_PORT} is in use; set KAFKA_CONTROLLER_PORT"
    fi
    require_java
    cmd_fetch
    mkdir -p "${LOG_DIR}"
    if secured; then
        make_tls
    fi
    write_config
    format_storage

    jvm_opts
    rm -f "${PID_FILE}"
    {
        echo "===== $(date -u +%Y-%m-%dT%H:%M:%SZ) starting Kafka ${KAFKA_VERSION} on ${BOOTSTRAP}"
    } >>"${STDOUT_LOG}"
    local launcher=()
    if command -v setsid >/dev/null 2>&1; then
        launcher=(setsid) # own session: a Ctrl-C in the caller's terminal does not reach it
    fi
    # setsid (not a process group leader here) execs java, so $! is the JVM's pid.
    "${launcher[@]}" "${JAVA}" "${JVM_OPTS[@]}" -cp "${LIB_DIR}/*" kafka.Kafka "${CONFIG_FILE}" \
        </dev/null >>"${STDOUT_LOG}" 2>&1 &
    pid=$!
    echo "${pid}" >"${PID_FILE}"

    local started=${SECONDS} deadline=$((SECONDS + KAFKA_START_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! kill -0 "${pid}" 2>/dev/null; then
            rm -f "${PID_FILE}"
            show_log_tail 50
            die "broker process ${pid} exited during startup"
        fi
        if kafka_answers "${KAFKA_PORT}"; then
            echo "kafka.sh: Kafka ${KAFKA_VERSION} ready in ~$((SECONDS - started)) s (pid ${pid}, state ${STATE_DIR})" >&2
            echo "${BOOTSTRAP}"
            return 0
        fi
        sleep 0.5
    done
    show_log_tail 50
    cmd_stop >&2 || true
    die "broker did not answer on ${BOOTSTRAP} within ${KAFKA_START_TIMEOUT} s"
}

cmd_stop() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "${PID_FILE}"
        echo "kafka.sh: not running (port ${KAFKA_PORT}, state ${STATE_DIR})"
        return 0
    fi
    kill -TERM "${pid}" 2>/dev/null || true
    local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
    while kill -0 "${pid}" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if kill -0 "${pid}" 2>/dev/null; then
        echo "kafka.sh: pid ${pid} still alive after ${KAFKA_STOP_TIMEOUT} s, sending SIGKILL" >&2
        kill -KILL "${pid}" 2>/dev/null || true
        while kill -0 "${pid}" 2>/dev/null; do
            sleep 0.1
        done
    fi
    rm -f "${PID_FILE}"
    echo "kafka.sh: stopped (pid ${pid})"
}

cmd_status() {
    local pid
    if pid="$(running_pid)"; then
        echo "kafka.sh: running (pid ${pid}) on ${BOOTSTRAP}, state ${STATE_DIR}"
        return 0
    fi
    echo "kafka.sh: not running on ${BOOTSTRAP} (state ${STATE_DIR})"
    return 3
}

cmd_logs() {
    local lines="${LINES:-100}"
    echo "${SERVER_LOG}"
    if [[ -f "${SERVER_LOG}" ]]; then
        tail -n "${lines}" "${SERVER_LOG}"
    else
        echo "kafka.sh: no log yet (${SERVER_LOG})" >&2
    fi
}

main() {
    local cmd="${1:-help}"
    case "${cmd}" in
        fetch) cmd_fetch ;;
        start) cmd_start ;;
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
