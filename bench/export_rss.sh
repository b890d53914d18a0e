#!/usr/bin/env bash
# Memory of an online export: a store of ITEMS items (500k by default) is
# served, then `GET /admin/export` is read to the end three times by curl;
# prints shopd's resident memory before the exports, its peak (VmHWM)
# after each, and the export's size and time.
#
#   bench/export_rss.sh                    # this tree, built --release
#   BENCH_BIN=/path/to/release BENCH_CONFIG=its/config.toml bench/export_rss.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-1}
CONNECTIONS=${CONNECTIONS:-1}
ITEMS=${ITEMS:-500000}
CARTS=${CARTS:-0}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

# shellcheck source=bench/lib.sh
source bench/lib.sh

token=bench-token-0123456789
printf '%s\n' "$token" >"$work/token"
"$bin/examples/seed" --export "$work/seed.ndjson" "$ITEMS" "$CARTS" >/dev/null
"$bin/shopd" import --data-dir "$work/big" --in "$work/seed.ndjson" 2>/dev/null
rm "$work/seed.ndjson"
# BENCH_CONFIG: the config file of an older build (one without newer keys).
start big "$bin/shopd" --data-dir "$work/big" --listen 127.0.0.1:0 \
    --config "${BENCH_CONFIG:-config.toml}" --admin-token-file "$work/token"
server_pid=$pid

kib() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$server_pid/status"; }
before=$(kib VmRSS)
peaks=()
times=()
for _ in 1 2 3; do
    started=$(date +%s%N)
    curl -sf -H "Authorization: Bearer $token" "http://$addr/admin/export" -o "$work/export.ndjson"
    times+=($((($(date +%s%N) - started) / 1000000)))
    peaks+=("$(kib VmHWM)")
done
after=$(kib VmRSS)
size=$(du -h "$work/export.ndjson" | cut -f1)
stop "$server_pid"

echo "| $ITEMS items, $CARTS carts | value |"
echo "|---|---|"
echo "| export size | $size |"
echo "| RSS before the exports | $((before / 1024)) MiB |"
echo "| peak RSS after each of three exports | $(for p in "${peaks[@]}"; do printf '%s ' "$((p / 1024)) MiB"; done)|"
echo "| RSS after | $((after / 1024)) MiB |"
echo "| export time, three runs | ${times[*]} ms |"
