#!/usr/bin/env bash
# The write-path benchmark of issue 3: ingress + relay on a Postgres and a
# 3-broker Kafka cluster of their own (.concert-bench/, ports 24432,
# 21092-21094 and 28080, apart from `scripts/up` and `scripts/test`),
# balance charges from ct_bench_load, then the relay's PENDING→SENT rate.
#
#   bench/write_path.sh [RUNS] [ct_bench_load args...]
#   bench/write_path.sh 3                          3 closed-loop runs, 64 connections, 10 s
#   bench/write_path.sh 2 --rate 15000 --duration 20   open loop
#   CONCERT_BENCH_KEEP=1   leave the cluster, ingress and relay running
#
# Before each run the relay is stopped, the outbox emptied (its frontier
# moved to the sequence's next id: ids are never reused, and a fresh
# sequence's last_value is the still unused 1) and the relay started again,
# so every run starts from the same state; the page cache is flushed (sync)
# so one run's Kafka writeback does not land in the next run's fsyncs (see
# docs/decisions.md, "The write path's figures").
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

runs=${1:-3}
[ $# -gt 0 ] && shift
ct_deps
ct_build build OFF

export CONCERT_DATA_DIR=${CONCERT_BENCH_DATA_DIR:-$PWD/.concert-bench}
export CONCERT_KAFKA_BASE_PORT=${CONCERT_BENCH_KAFKA_BASE_PORT:-21092}
export CONCERT_PG_PORT=${CONCERT_BENCH_PG_PORT:-24432}
export CONCERT_HTTP_PORT=${CONCERT_BENCH_HTTP_PORT:-28080}
export CONCERT_LOG_LEVEL=${CONCERT_LOG_LEVEL:-warn}
# The load signs its users' tokens with this key and reads /metrics with the
# admin key; it comes from one address.
export CONCERT_AUTH_KEY=${CONCERT_AUTH_KEY:-write-path-bench-key-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')}
export CONCERT_ADMIN_KEY=${CONCERT_ADMIN_KEY:-write-path-bench-admin-$$}
export CONCERT_HTTP_CONNECTIONS_PER_IP=${CONCERT_HTTP_CONNECTIONS_PER_IP:-0}
B=$PWD/build
logs=$CONCERT_DATA_DIR/bench-logs
mkdir -p "$logs"

ingress_pid= relay_pid=
stop_relay() {
  [ -n "$relay_pid" ] || return 0
  kill "$relay_pid" 2>/dev/null || true
  wait "$relay_pid" 2>/dev/null || true
  relay_pid=
}
stop_all() {
  [ "${CONCERT_BENCH_KEEP:-0}" = 1 ] && return 0
  stop_relay
  if [ -n "$ingress_pid" ]; then kill "$ingress_pid" 2>/dev/null || true; wait "$ingress_pid" 2>/dev/null || true; fi
  "$B/concert" kafka stop || true
  "$B/concert" pg stop || true
}
trap stop_all EXIT

"$B/concert" pg start
"$B/concert" migrate
"$B/concert" kafka start
url=$("$B/concert" pg url)

"$B/concert" ingress >>"$logs/ingress.log" 2>&1 &
ingress_pid=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$CONCERT_HTTP_PORT/readyz" >/dev/null && break
  sleep 0.2
done

for i in $(seq "$runs"); do
  stop_relay
  psql -qX "$url" -c "TRUNCATE outbox, idempotency_keys CASCADE" \
    -c "UPDATE outbox_frontier SET next_id = (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM outbox_id_seq)" \
    -c "CHECKPOINT"
  "$B/concert" relay >>"$logs/relay.log" 2>&1 &
  relay_pid=$!
  sleep 3 # leadership, producer id
  sync
  ct_log "== run $i/$runs =="
  "$B/bench/ct_bench_load" --url "http://127.0.0.1:$CONCERT_HTTP_PORT" --connections 64 --duration 10 --pg "$@"
done
