#!/usr/bin/env bash
# shopd's benchmark: one command, one table.
#
# Builds shopd, a ceiling server (bench/ceiling.rs: warp answering a fixed
# item-sized JSON) and the seeder; pins each server to CPU 0 and wrk to CPU 1;
# runs every scenario at 64 connections and prints rps, p50, p99 and rps as a
# fraction of the ceiling, then start-up time, disk size and RSS of a store of
# 100k items and 100k carts. shopd runs with the shipped config.toml, as
# users run it: access log on, durability sync (bench/lib.sh).
#
#   bench/run.sh                 # 10 s per scenario
#   DURATION=30 bench/run.sh     # longer runs
#   bench/run.sh interleaved     # GET /item/{id} against the ceiling, round
#                                # by round (bench/interleaved.sh)
#   bench/run.sh postgres        # on PostgreSQL (bench/postgres.sh)
#   bench/run.sh keyed           # POST /item with and without a fresh
#                                # Idempotency-Key, round by round, and the
#                                # bytes kept per key (bench/keyed.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
SMALL=${SMALL:-100}
LARGE=${LARGE:-100000}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

case ${1:-} in
    postgres) exec bench/postgres.sh ;;
    interleaved) exec bench/interleaved.sh ;;
    keyed) exec bench/keyed.sh ;;
esac

# shellcheck source=bench/lib.sh
source bench/lib.sh

# The ceiling: measured first and last, the better run counts, so a busy
# moment on the machine does not flatter shopd.
ceiling() {
    start ceiling "$bin/examples/ceiling" 127.0.0.1:0
    load BENCH_PATH=/item/{a} "http://$addr"
    stop "$pid"
}

echo "building done; ${DURATION}s per scenario at $CONNECTIONS connections" >&2

ceiling_first=$(ceiling)

# A small store: reads first, then writes.
"$bin/examples/seed" "$work/small" "$SMALL" "$SMALL" >/dev/null
cp -r "$work/small" "$work/quiet"
ids="BENCH_IDS=$SMALL"
# The access log's cost: the same read with its lines switched off, right
# before the row with them on.
shopd quiet --log-level "info,shopd::access=warn"
quiet=$(load $ids BENCH_PATH=/item/{a} "http://$addr")
stop "$pid"
shopd small
row "GET /item/{id}" "$(load $ids BENCH_PATH=/item/{a} "http://$addr")"
row "GET /item/{id}, access log off" "$quiet"
row "GET /item?limit=10" "$(load $ids BENCH_PATH=/item?limit=10 "http://$addr")"
row "GET /cart/{id} (3 lines)" "$(load $ids BENCH_PATH=/cart/{a} "http://$addr")"
row "GET /cart?min_price=100" "$(load $ids BENCH_PATH=/cart?min_price=100 "http://$addr")"
item_body='BENCH_BODY={"name": "bench item", "price": 9.99}'
row "POST /item (sync)" "$(load $ids BENCH_METHOD=POST BENCH_PATH=/item "$item_body" "http://$addr")"
row "POST /item (sync), a new Idempotency-Key each" \
    "$(load $ids BENCH_KEYED=1 BENCH_METHOD=POST BENCH_PATH=/item "$item_body" "http://$addr")"
row "POST /cart/{id}/add/{item_id} (sync), item n to cart n" \
    "$(load $ids BENCH_METHOD=POST BENCH_PATH=/cart/{a}/add/{a} "http://$addr")"
one_conn=$(CONNECTIONS=1 load $ids BENCH_METHOD=POST BENCH_PATH=/item "$item_body" "http://$addr")
stop "$pid"

shopd periodic --durability periodic
row "POST /item (periodic)" "$(load BENCH_METHOD=POST BENCH_PATH=/item "$item_body" "http://$addr")"
stop "$pid"

# A large store.
seed_started=$(date +%s)
"$bin/examples/seed" "$work/large" "$LARGE" "$LARGE" >/dev/null
seed_secs=$(($(date +%s) - seed_started))
shopd large
large_startup=$startup_ms
ids="BENCH_IDS=$LARGE"
row "GET /item/{id}, ${LARGE} items" "$(load $ids BENCH_PATH=/item/{a} "http://$addr")"
row "GET /item?limit=10, ${LARGE} items" "$(load $ids BENCH_PATH=/item?limit=10 "http://$addr")"
row "GET /cart/{id}, ${LARGE} carts" "$(load $ids BENCH_PATH=/cart/{a} "http://$addr")"
row "GET /cart?min_price=100, ${LARGE} carts" \
    "$(load $ids BENCH_PATH=/cart?min_price=100 "http://$addr")"
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
stop "$pid"
disk=$(du -sh "$work/large" | cut -f1)

ceiling_last=$(ceiling)
if awk -v a="${ceiling_first%% *}" -v b="${ceiling_last%% *}" 'BEGIN { exit !(a >= b) }'; then
    ceiling_best=$ceiling_first
else
    ceiling_best=$ceiling_last
fi
ceiling_rps=${ceiling_best%% *}

echo
echo "| scenario ($CONNECTIONS connections, ${DURATION}s) | rps | p50 ms | p99 ms | of ceiling |"
echo "|---|---:|---:|---:|---:|"
for entry in "ceiling: warp, fixed JSON (best of first and last run)|$ceiling_best" "${rows[@]}"; do
    name=${entry%%|*}
    read -r rps p50 p99 <<<"${entry#*|}"
    fraction=$(awk -v a="$rps" -v b="$ceiling_rps" 'BEGIN { printf "%.2f", a / b }')
    echo "| $name | $(printf '%.0f' "$rps") | $p50 | $p99 | $fraction |"
done
echo
read -r fsync_rps _ _ <<<"$one_conn"
echo "- one writer (1 connection, sync): $(printf '%.0f' "$fsync_rps") POST /item per second, i.e. one fsync per request on this disk"
echo "- store of $LARGE items and $LARGE carts: start-up $(printf '%.0f' "$large_startup") ms, $disk on disk, RSS $((rss_kib / 1024)) MiB after the reads (seeded in ${seed_secs} s)"
echo "- shopd with the shipped config.toml (log_level info: one access-log line per request)"
echo "- machine: $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(free -g | awk '/Mem:/ {print $2}') GiB"
