#!/usr/bin/env bash
# `make demo`: a local Kafka broker, the worker with the shipped model, a replay of the example
# tweets, and the labels as they arrive. Ctrl-C stops everything this script started.
#
# A broker already listening on the port (one from `make kafka-start`, or an earlier demo's) is
# used as it is and left running; otherwise a fresh one is started, and stopped at the end.
# The labels shown are this run's only: tail starts at the end of the output topic, and the
# replay begins once it is there, so a reused broker's earlier labels stay in the topic unshown
# (`sentistream tail --from-beginning` shows them).
#
# Environment: VENV (default .venv-worker), DEMO_KAFKA_PORT (9092), DEMO_METRICS_PORT (8000),
# DEMO_RATE (tweets/s, default 50), DEMO_EXIT=1 to stop by itself after the summary.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv-worker}
PORT=${DEMO_KAFKA_PORT:-9092}
METRICS_PORT=${DEMO_METRICS_PORT:-8000}
RATE=${DEMO_RATE:-50}
TWEETS=examples/demo-tweets.csv
BOOTSTRAP=127.0.0.1:${PORT}
RUN_DIR=runs/demo
SENTISTREAM="${VENV}/bin/sentistream"
export KAFKA_PORT=${PORT} KAFKA_STATE_DIR=${KAFKA_STATE_DIR:-.cache/kafka/demo-state-${PORT}}
export SENTISTREAM_BOOTSTRAP_SERVERS=${BOOTSTRAP}

mkdir -p "${RUN_DIR}"
broker_started=0
worker_pid=""
producer_pid=""

cleanup() {
    trap - EXIT INT TERM
    echo
    echo "== stopping"
    [[ -n ${producer_pid} ]] && kill "${producer_pid}" 2>/dev/null || true
    if [[ -n ${worker_pid} ]] && kill -0 "${worker_pid}" 2>/dev/null; then
        kill -TERM "${worker_pid}" && wait "${worker_pid}" || true
        echo "worker stopped (log: ${RUN_DIR}/worker.log)"
    fi
    if ((broker_started)); then tools/kafka/kafka.sh stop; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Whether something accepts connections on the port: by the port, not by a state folder
# (`kafka.sh status` knows only the broker started with the same KAFKA_STATE_DIR).
listening() {
    timeout 2 bash -c ": </dev/tcp/127.0.0.1/${PORT}" 2>/dev/null
}

if listening; then
    echo "== using the Kafka broker already listening on ${BOOTSTRAP} (it keeps running after the demo)"
else
    echo "== starting Kafka on ${BOOTSTRAP} (state: ${KAFKA_STATE_DIR}, fresh for this demo)"
    rm -rf "${KAFKA_STATE_DIR}"
    tools/kafka/kafka.sh start
    broker_started=1
fi

"${SENTISTREAM}" create-topics --partitions 3

echo "== starting the worker (log: ${RUN_DIR}/worker.log)"
"${SENTISTREAM}" worker --metrics-port "${METRICS_PORT}" --group-id sentistream-demo \
    >"${RUN_DIR}/worker.log" 2>&1 &
worker_pid=$!
for _ in $(seq 1 60); do
    if "${VENV}/bin/python" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:${METRICS_PORT}/readyz', timeout=1)" 2>/dev/null; then
        break
    fi
    if ! kill -0 "${worker_pid}" 2>/dev/null; then
        echo "the worker exited; its log:" >&2
        cat "${RUN_DIR}/worker.log" >&2
        exit 1
    fi
    sleep 0.5
done

count=$(grep -c . "${TWEETS}")
tail_log="${RUN_DIR}/tail.log"
: >"${tail_log}"
echo "== replaying ${count} tweets from ${TWEETS} at ${RATE}/s"
# tail prints its legend once it is at the output topic's end: the replay waits for it.
(
    for _ in $(seq 1 100); do
        grep -q '^prob:' "${tail_log}" && break
        sleep 0.1
    done
    exec "${SENTISTREAM}" produce --file "${TWEETS}" --rate "${RATE}" 2>"${RUN_DIR}/producer.log"
) &
producer_pid=$!

echo "== labels as they arrive (label, probability, partition@offset, tweet)"
"${SENTISTREAM}" tail --max "${count}" --timeout 60 --summary 2> >(tee "${tail_log}" >&2)
wait $! || true # the tee, so that the summary is out before what follows
wait "${producer_pid}" || true
producer_pid=""

servers=""
if [[ ${PORT} != 9092 ]]; then
    servers=" --bootstrap-servers ${BOOTSTRAP}"
fi
echo
echo "metrics:  http://127.0.0.1:${METRICS_PORT}/metrics  (health: /healthz, /readyz)"
echo "more:     ${SENTISTREAM} produce --file ${TWEETS}${servers}   |   ${SENTISTREAM} tail${servers}"
if [[ ${DEMO_EXIT:-0} == 1 ]]; then
    exit 0
fi
echo "the broker and the worker keep running; press Ctrl-C to stop them"
while kill -0 "${worker_pid}" 2>/dev/null; do sleep 1; done
