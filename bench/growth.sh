#!/usr/bin/env bash
# How list filters and point reads grow with the store (issue 21's table).
#
# For each size (items; carts at a third of that, three lines each), writes
# an export with bench/seed.rs, imports it with `shopd import`, starts shopd
# with the shipped config.toml and prints one row per request: the median
# of ROUNDS single requests (curl, one at a time); then 16 clients sending
# the worst cart filter for DURATION seconds (answers/s, how many were shed
# with 503) and GET /item/1 at one client meanwhile (p50, p99); start-up
# (reading, checking and indexing the store) and the resident memory after.
#
#   bench/growth.sh                        # 10k, 100k, 1M items
#   SIZES="10000 300000" bench/growth.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${SIZES:-"10000 100000 1000000"}
ROUNDS=${ROUNDS:-9}
DURATION=${DURATION:-10}
CONNECTIONS=16
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

# shellcheck source=bench/lib.sh
source bench/lib.sh

# median_ms URL: the median time of ROUNDS requests, in milliseconds.
median_ms() {
    for _ in $(seq 1 "$ROUNDS"); do
        curl -s -o /dev/null -w '%{time_total}\n' "$1"
    done | sort -n | awk '{t[NR] = $1} END {printf "%.1f", t[int((NR + 1) / 2)] * 1000}'
}

# flood URL: DURATION seconds of 16 clients; prints "answered/s shed".
flood() {
    local out
    out=$(taskset -c "$LOAD_CPU" wrk -t1 -c16 -d"${DURATION}s" "$1")
    local rps shed
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    shed=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")
    echo "$rps ${shed:-0}"
}

rows=()
for size in $SIZES; do
    carts=$((size / 3))
    "$bin/examples/seed" --export "$work/$size.ndjson" "$size" "$carts" >/dev/null
    import_started=$(date +%s.%N)
    "$bin/shopd" import --data-dir "$work/$size" --in "$work/$size.ndjson" >/dev/null 2>&1
    import_s=$(printf '%.1f' "$(echo "$(date +%s.%N) - $import_started" | bc)")
    rm "$work/$size.ndjson"
    shopd "$size"
    startup_ms=$(printf '%.0f' "$startup_ms")
    base="http://$addr"
    point_item=$(median_ms "$base/item/$((size / 2))")
    point_cart=$(median_ms "$base/cart/$((carts / 2))")
    item_filter=$(median_ms "$base/item?min_price=1e12")
    cart_price=$(median_ms "$base/cart?min_price=1e12")
    cart_quantity=$(median_ms "$base/cart?min_quantity=1000")
    flood "$base/cart?min_price=1e12" >"$work/flood" &
    flooding=$!
    read -r _ read_p50 read_p99 < <(CONNECTIONS=1 load BENCH_PATH=/item/1 "$base")
    wait "$flooding"
    read -r flood_rps flood_shed <"$work/flood"
    rss_mb=$(awk '/^VmRSS:/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status")
    rows+=("$size|$carts|$import_s|$startup_ms|$rss_mb|$point_item|$point_cart|$item_filter|$cart_price|$cart_quantity|$flood_rps|$flood_shed|$read_p50|$read_p99")
    stop "$pid"
    rm -rf "${work:?}/$size"
done

printf '| %s |\n' "items | carts | import s | start-up ms | RSS MB | GET /item/{mid} ms | GET /cart/{mid} ms | GET /item?min_price=1e12 ms | GET /cart?min_price=1e12 ms | GET /cart?min_quantity=1000 ms | 16 clients on the cart filter, answers/s | of them shed (503) | GET /item/1 meanwhile p50 ms | p99 ms"
printf '|%s\n' "---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for row in "${rows[@]}"; do
    printf '| %s |\n' "${row//|/ | }"
done
