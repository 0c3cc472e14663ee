#!/usr/bin/env bash
# The journey benchmark of issue 19: the whole pipeline (`concert up`) on a
# Postgres and a 3-broker Kafka cluster of its own, fans charging, queueing,
# holding and paying, each write answered with its outcome (Prefer: wait).
#
#   bench/journey.sh [--peer] [--users "64 512 2048"] [--duration S] [--rate R] [--max-active N] [--warmup S]
#
# Starts from nothing each time (.concert-journey/, ports 31092-31094,
# 34432, 38080; the broker's jars are kept between runs), warms the
# brokers' JIT with --warmup s (default 360) of journeys at 512 users (on 2
# cores fresh brokers compile for minutes: their JIT took 68% of a core in
# the first minute of load, 23% in the second, 2-4% from the fifth, while
# journeys/s rose 190 -> 318 -> 385-422; each run's CPU line shows the
# brokers' JIT share, "kafka=N (jit M)"), then for each user count runs
# `ct_bench_load --scenario journey` (closed loop: each user starts their
# next journey when the last one ends), then one open-loop run (arrivals at
# --rate per s, default 80% of the best closed-loop rate, latency from each
# arrival's due time). The concert admits --max-active users at once
# (default 1000): the others wait in the queue, as fans do. Each run prints
# journeys/s (a journey counts when its payment SUCCEEDED), p50/p99/p999
# per step from POST to outcome (admission: from the token to ACTIVE) and
# CPU per component and the per-hop latencies of that run's most common
# path; then the per-hop latencies of 1 in
# CONCERT_TRACE_SAMPLE (default 50) commands of the whole measurement
# (bench/trace_report.py). --peer then runs the synchronous peer
# (../shared/peers/syncpeer/run.sh, two runs each: the first is its JIT's
# cold start) at each of the same user counts and prints, per count, the
# pipeline's rate, the peer's two and the ratio to the peer's better run.
# The peer's concerts admit twice its users (run.sh passes no
# --max-active), so its fans never wait in a queue.
# CONCERT_BENCH_KEEP=1 leaves the pipeline running.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

peer=0 users="64 512 2048" duration=20 rate= max_active=1000 warmup=360
declare -A ours=()
while [ $# -gt 0 ]; do
  case $1 in
    --peer) peer=1 ;;
    --users) users=$2; shift ;;
    --duration) duration=$2; shift ;;
    --rate) rate=$2; shift ;;
    --max-active) max_active=$2; shift ;;
    --warmup) warmup=$2; shift ;;
    *) ct_log "usage: bench/journey.sh [--peer] [--users \"64 512 2048\"] [--duration S] [--rate R] [--max-active N] [--warmup S]"; exit 2 ;;
  esac
  shift
done

ct_deps
ct_build build OFF
B=$PWD/build

export CONCERT_DATA_DIR=${CONCERT_BENCH_DATA_DIR:-$PWD/.concert-journey}
export CONCERT_KAFKA_BASE_PORT=${CONCERT_BENCH_KAFKA_BASE_PORT:-31092}
export CONCERT_PG_PORT=${CONCERT_BENCH_PG_PORT:-34432}
export CONCERT_HTTP_PORT=${CONCERT_BENCH_HTTP_PORT:-38080}
export CONCERT_ADMIN_KEY=${CONCERT_ADMIN_KEY:-journey-bench-$$}
export CONCERT_TRACE_SAMPLE=${CONCERT_TRACE_SAMPLE:-50}
# 2,048 users hold 2,048 keep-alive connections
export CONCERT_HTTP_CONNECTIONS_MAX=${CONCERT_HTTP_CONNECTIONS_MAX:-4096}
# ... all from one address, each fan as a user of their own
export CONCERT_HTTP_CONNECTIONS_PER_IP=${CONCERT_HTTP_CONNECTIONS_PER_IP:-0}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
url=http://127.0.0.1:$CONCERT_HTTP_PORT

# From nothing, keeping only the broker's jars (fetched once with Maven).
jars=$PWD/.concert-jars
if [ -d "$CONCERT_DATA_DIR/kafka/libs" ] && [ ! -d "$jars" ]; then mv "$CONCERT_DATA_DIR/kafka/libs" "$jars"; fi
rm -rf "$CONCERT_DATA_DIR"
mkdir -p "$CONCERT_DATA_DIR/kafka"
[ -d "$jars" ] && cp -r "$jars" "$CONCERT_DATA_DIR/kafka/libs"
logs=$CONCERT_DATA_DIR/bench-logs
mkdir -p "$logs"

up_pid=
stop_all() {
  [ "${CONCERT_BENCH_KEEP:-0}" = 1 ] && return 0
  if [ -n "$up_pid" ]; then kill -INT "$up_pid" 2>/dev/null || true; wait "$up_pid" 2>/dev/null || true; fi
  up_pid=
}
trap stop_all EXIT

"$B/concert" up >"$logs/up.log" 2>&1 &
up_pid=$!
for _ in $(seq 600); do
  grep -q '^ready:' "$logs/up.log" && break
  kill -0 "$up_pid" 2>/dev/null || { tail -20 "$logs/up.log"; exit 1; }
  sleep 0.5
done
grep -q '^ready:' "$logs/up.log" || { ct_log "concert up did not become ready"; tail -20 "$logs/up.log"; exit 1; }
[ -d "$jars" ] || cp -r "$CONCERT_DATA_DIR/kafka/libs" "$jars"

# The journeys/s figures in ct_bench_load's output, one a line.
rates() { sed -n 's/.*journeys\/s=\([0-9.]*\).*/\1/p'; }
load() { "$B/bench/ct_bench_load" --url "$url" --scenario journey --max-active "$max_active" "$@" 2>&1 | grep -v '^journey of'; }
# The hops of one run alone (its most common path): the report over all
# runs at the end mixes 64 users' latencies with 2,048's.
run_hops() {
  echo "-- per hop of this run, its most common path (1 in $CONCERT_TRACE_SAMPLE commands) --"
  tail -n +"$1" "$logs/up.log" | python3 bench/trace_report.py | sed -n 1,13p  # sed reads it all: no SIGPIPE under pipefail
}

ct_log "== warm-up: $warmup s of journeys at 512 users (not counted) =="
# In two halves, each a concert of its own (100,000 seats: one half does
# not sell out). The first half's figures are a cold start's: failures
# there are worth a look (a plan made on empty tables once failed a
# quarter of them, docs/decisions.md).
for half in 1 2; do
  load --connections 512 --duration $(((warmup + 1) / 2)) | grep -E '^journeys=' | sed "s/^/warm-up $half: /" || true
done
mark=$(wc -l <"$logs/up.log")
best=0 best_users=0
for u in $users; do
  echo "== closed loop, $u users =="
  run_mark=$(wc -l <"$logs/up.log")
  out=$(load --connections "$u" --duration "$duration")
  echo "$out"
  run_hops "$run_mark"
  js=$(printf '%s\n' "$out" | rates)
  if [ -n "$js" ] && awk -v a="$js" -v b="$best" 'BEGIN{exit !(a>b)}'; then best=$js best_users=$u; fi
  ours[$u]=${js:-0}
done
[ -n "$rate" ] || rate=$(awk -v b="$best" 'BEGIN{r=int(b*0.8); print (r>0 ? r : 1)}')
echo "== open loop, $rate arrivals/s, up to ${best_users:-64} users at once =="
run_mark=$(wc -l <"$logs/up.log")
load --connections "$(( best_users > 0 ? best_users : 64 ))" --duration "$duration" --rate "$rate"
run_hops "$run_mark"
echo "== per hop, 1 in $CONCERT_TRACE_SAMPLE commands of the runs above (bench/trace_report.py) =="
tail -n +"$mark" "$logs/up.log" | python3 bench/trace_report.py | sed -n 1,60p
echo "best closed loop: $best journeys/s at $best_users users"

if [ "$peer" = 1 ]; then
  stop_all
  summary=()
  for u in $users; do
    echo "== synchronous peer, $u users (../shared/peers/syncpeer/run.sh) =="
    # The load program signs each fan's bearer token; the peer ignores it, so any key will do.
    prc=0
    pout=$(CONCERT_AUTH_KEY=peer-bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n') \
      ../shared/peers/syncpeer/run.sh "$u" "$duration" 2>&1) || prc=$?
    echo "$pout"
    [ "$prc" = 0 ] || echo "the synchronous peer failed (exit $prc): its output is above"
    pruns=$(printf '%s\n' "$pout" | rates | paste -sd/ -)
    pbest=$(printf '%s\n' "$pout" | rates | sort -g | tail -1)
    summary+=("$(printf '%6s users: pipeline %7s journeys/s, synchronous peer %s, ratio to its better run %s' "$u" \
      "${ours[$u]:-?}" "${pruns:-?}" "$(awk -v a="${ours[$u]:-0}" -v b="${pbest:-0}" 'BEGIN{printf "%.2f", (b>0 ? a/b : 0)}')")")
  done
  echo "== pipeline against the synchronous peer, same sitting =="
  printf '%s\n' "${summary[@]}"
fi
