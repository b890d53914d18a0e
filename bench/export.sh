#!/usr/bin/env bash
# Backup and restore at scale: a store of 100k items and 100k carts (3 lines
# each) exported online while writers go on, then imported into an empty
# store. Prints the export and import rates, and the writers' latency with
# and without an export running (the pause an export costs them).
#
#   bench/export.sh              # ITEMS=100000 by default
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-12}
CONNECTIONS=${CONNECTIONS:-16}
ITEMS=${ITEMS:-100000}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

# shellcheck source=bench/lib.sh
source bench/lib.sh

token=bench-token-0123456789
printf '%s\n' "$token" >"$work/token"

seed_started=$(date +%s)
"$bin/examples/seed" "$work/big" "$ITEMS" "$ITEMS" >/dev/null
echo "seeded $ITEMS items and $ITEMS carts in $(($(date +%s) - seed_started)) s" >&2
# The snapshot's own log line says how long writers waited.
RUST_LOG=info,shopd::access=warn shopd big --admin-token-file "$work/token"
server_pid=$pid

writes() {
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency \
        -s bench/random_paths.lua "http://$addr" |
        awk '/^Requests\/sec:/ {rps = $2} $1 == "Latency" && NF > 3 {max = $4} $1 == "99%" {p99 = $2} END {print rps, p99, max}'
}
export BENCH_METHOD=POST BENCH_PATH=/item BENCH_BODY='{"name": "bench item", "price": 9.99}'

read -r base_rps base_p99 base_max <<<"$(writes)"

# The same writers, with three online exports during the run.
writes >"$work/during" &
wrk_pid=$!
sleep 2
export_ms=()
for _ in 1 2 3; do
    started=$(date +%s%N)
    SHOPD_ADMIN_TOKEN=$token "$bin/shopd" export --url "http://$addr" --out "$work/export.ndjson"
    export_ms+=($((($(date +%s%N) - started) / 1000000)))
    sleep 1
done
wait "$wrk_pid"
read -r during_rps during_p99 during_max <"$work/during"
pauses=$(grep -o 'open_micros=[0-9]* close_micros=[0-9]*' "$work/big.err" | tr '\n' ' ')
stop "$server_pid"

lines=$(wc -l <"$work/export.ndjson")
size=$(du -h "$work/export.ndjson" | cut -f1)
started=$(date +%s%N)
"$bin/shopd" import --data-dir "$work/restored" --in "$work/export.ndjson" 2>/dev/null
import_ms=$((($(date +%s%N) - started) / 1000000))

echo
echo "| $ITEMS items + $ITEMS carts | value |"
echo "|---|---|"
echo "| export size | $lines lines, $size |"
echo "| online export (shopd export --url), three runs | ${export_ms[*]} ms |"
echo "| export rate, best run | $(awk -v n="$ITEMS" -v ms="$(printf '%s\n' "${export_ms[@]}" | sort -n | head -1)" 'BEGIN { printf "%.0f", 2 * n / ms * 1000 }') items+carts/s |"
echo "| import into an empty data directory | $import_ms ms, $(awk -v n="$ITEMS" -v ms="$import_ms" 'BEGIN { printf "%.0f", 2 * n / ms * 1000 }') items+carts/s |"
echo "| writers ($CONNECTIONS connections, POST /item, sync) without export | $base_rps rps, p99 $base_p99, max $base_max |"
echo "| the same with three exports running | $during_rps rps, p99 $during_p99, max $during_max |"
echo "| gate held at the start and end of each export (writers wait at most this) | $pauses |"
