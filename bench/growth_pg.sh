#!/usr/bin/env bash
# How list filters grow with the store, on PostgreSQL: the rows of issue 21's
# table at each size (ITEMS items, a third as many carts of 3 lines), plus
# what a price change costs on an item held by 10,000 carts.
#
# Starts a throwaway PostgreSQL cluster (Debian's binaries), and per size
# writes an export (item n costs n % 100 + 0.99; cart n holds three items,
# the first twice; the first 10,000 carts also hold one "hot" item), imports
# it with `shopd import --database-url`, starts shopd on it and measures:
# single requests with one connection (p50 and p99 over the run), 16 clients
# sending the worst filter (requests/s), and `GET /item/{id}` p99 while those
# 16 run.
#
#   bench/growth_pg.sh                 # SIZES="10000 100000"
#   SIZES="10000 100000 1000000" bench/growth_pg.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-1}
SIZES=${SIZES:-10000 100000}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
HOT_CARTS=${HOT_CARTS:-10000}

# shellcheck source=bench/lib.sh
source bench/lib.sh

start_postgres

# export ITEMS FILE: the store described above, in shopd's export format.
write_export() {
    python3 - "$1" "$HOT_CARTS" >"$2" <<'EOF'
import json, sys
items, hot_carts = int(sys.argv[1]), int(sys.argv[2])
carts = max(items // 3, 1)
hot = items + 1
out = sys.stdout
out.write(json.dumps({"format": "shopd-export", "version": 1, "shopd": "0.1.0",
                      "next_item_id": hot + 1, "next_cart_id": carts + 1}) + "\n")
for n in range(1, items + 1):
    out.write('{"item":{"id":%d,"name":"item %d","price":%s,"deleted":false}}\n'
              % (n, n, repr(n % 100 + 0.99)))
out.write('{"item":{"id":%d,"name":"hot","price":1.5,"deleted":false}}\n' % hot)
for c in range(1, carts + 1):
    pick = [((c * 3 + k) % items) + 1 for k in range(3)]
    lines = [{"item": pick[0], "quantity": 2}, {"item": pick[1], "quantity": 1},
             {"item": pick[2], "quantity": 1}]
    if c <= hot_carts:
        lines.append({"item": hot, "quantity": 1})
    out.write(json.dumps({"cart": {"id": c, "lines": lines}}, separators=(",", ":")) + "\n")
out.write(json.dumps({"end": {"items": items + 1, "carts": carts}}) + "\n")
EOF
}

# latency PATH: one connection for DURATION seconds; prints "p50 p99" in ms.
latency() {
    local out
    out=$(BENCH_PATH=$1 taskset -c "$LOAD_CPU" wrk -t1 -c1 -d"${DURATION}s" --latency --timeout 40s \
        -s bench/random_paths.lua "http://$addr")
    echo "$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")") $(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")"
}

# price_change ITEM: median ms of 5 PATCHes of ITEM's price.
price_change() {
    for n in 1 2 3 4 5; do
        curl -s -o /dev/null -w '%{time_total}\n' -X PATCH -d "{\"price\": $n.25}" \
            "http://$addr/item/$1"
    done | sort -n | sed -n 3p | awk '{printf "%.1f", $1 * 1000}'
}

results=()
for size in $SIZES; do
    db="growth_$size"
    "$pgbin/psql" -q -h 127.0.0.1 -p "$port" -U shopd -d postgres -c "CREATE DATABASE $db"
    url="postgres://shopd@127.0.0.1:$port/$db"
    write_export "$size" "$work/export.ndjson"
    started=$(date +%s.%N)
    "$bin/shopd" import --database-url "$url" --in "$work/export.ndjson" >/dev/null
    import_s=$(echo "$(date +%s.%N) - $started" | bc)
    # Not the `shopd` helper: it gives a data directory, which shopd refuses
    # together with a database URL.
    RUST_LOG=warn start "growth-$size" "$bin/shopd" --listen 127.0.0.1:0 \
        --config config.toml --database-url "$url"
    server=$pid
    mid=$((size / 2))
    mid_cart=$((size / 6 + 1))
    read -r item_p50 item_p99 <<<"$(latency "/item/$mid")"
    read -r cart_p50 cart_p99 <<<"$(latency "/cart/$mid_cart")"
    read -r ifilter_p50 ifilter_p99 <<<"$(latency "/item?min_price=1e12")"
    read -r cprice_p50 cprice_p99 <<<"$(latency "/cart?min_price=1e12")"
    read -r cquant_p50 cquant_p99 <<<"$(latency "/cart?min_quantity=1000")"
    # 16 clients on the worst filter, and point reads beside them.
    BENCH_PATH="/cart?min_price=1e12" taskset -c "$LOAD_CPU" wrk -t1 -c16 -d"${DURATION}s" \
        --timeout 40s -s bench/random_paths.lua "http://$addr" >"$work/sixteen" &
    heavy=$!
    read -r beside_p50 beside_p99 <<<"$(latency "/item/1")"
    wait "$heavy"
    sixteen_rps=$(awk '/^Requests\/sec:/ {print $2}' "$work/sixteen")
    hot_ms=$(price_change $((size + 1)))
    stop "$server"
    results+=("$size|$import_s|$item_p50/$item_p99|$cart_p50/$cart_p99|$ifilter_p50/$ifilter_p99|$cprice_p50/$cprice_p99|$cquant_p50/$cquant_p99|$sixteen_rps|$beside_p50/$beside_p99|$hot_ms")
done

echo
echo "| items (carts = items / 3) | import s | GET /item/{id} | GET /cart/{id} | GET /item?min_price=1e12 | GET /cart?min_price=1e12 | GET /cart?min_quantity=1000 | 16 clients on /cart?min_price=1e12, req/s | GET /item/1 beside them | PATCH price of an item in $HOT_CARTS carts |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for entry in "${results[@]}"; do
    IFS='|' read -r size import_s a b c d e f g h <<<"$entry"
    printf '| %s | %.1f | %s | %s | %s | %s | %s | %.0f | %s | %s ms |\n' \
        "$size" "$import_s" "$a" "$b" "$c" "$d" "$e" "$f" "$g" "$h"
done
echo
echo "- latencies are p50/p99 in ms, one connection, ${DURATION}s each; the price change is the median of 5"
echo "- PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}') and shopd pinned to CPU $SERVER_CPU, wrk to CPU $LOAD_CPU"
echo "- machine: $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(free -g | awk '/Mem:/ {print $2}') GiB"
