#!/usr/bin/env bash
# A scheduled backup of a store of ITEMS items and ITEMS carts (3 lines
# each; 100k by default): shopd takes one every EVERY seconds (2) into a
# fresh backup_dir until ROUNDS (5) are complete; prints each backup's
# duration as shopd logs it (export, fsync and rename), the median, and
# the size of a backup file.
#
#   bench/backup.sh
#   BACKEND=postgres bench/backup.sh             # on a throwaway PostgreSQL
#   BENCH_BIN=/path/to/release bench/backup.sh   # another build
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-1}
CONNECTIONS=${CONNECTIONS:-1}
ITEMS=${ITEMS:-100000}
EVERY=${EVERY:-2}
ROUNDS=${ROUNDS:-5}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

# shellcheck source=bench/lib.sh
source bench/lib.sh

backups=(--backup-dir "$work/backups" --backup-every-secs "$EVERY" --backup-keep 20)
"$bin/examples/seed" --export "$work/seed.ndjson" "$ITEMS" "$ITEMS" >/dev/null
if [[ ${BACKEND:-sled} == postgres ]]; then
    start_postgres
    url="postgres://shopd@127.0.0.1:$port/postgres"
    "$bin/shopd" import --database-url "$url" --in "$work/seed.ndjson" 2>/dev/null
    start big "$bin/shopd" --listen 127.0.0.1:0 --config config.toml --database-url "$url" "${backups[@]}"
else
    "$bin/shopd" import --data-dir "$work/big" --in "$work/seed.ndjson" 2>/dev/null
    shopd big "${backups[@]}"
fi
rm "$work/seed.ndjson"
server_pid=$pid
for _ in $(seq 1 600); do
    taken=$(grep -c "backup taken" "$work/big.err" || true)
    [[ $taken -ge $ROUNDS ]] && break
    sleep 0.5
done
stop "$server_pid"
mapfile -t secs < <(grep "backup taken" "$work/big.err" | sed -n 's/.*secs=\([0-9.]*\).*/\1/p' | head -n "$ROUNDS")
median=$(printf '%s\n' "${secs[@]}" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
file=$(find "$work/backups" -name 'shopd-backup-*.ndjson' | head -n 1)
echo "| scheduled backup of $ITEMS items + $ITEMS carts (3 lines), ${BACKEND:-sled} | value |"
echo "|---|---|"
echo "| backup file | $(wc -l <"$file") lines, $(du -h "$file" | cut -f1) ($(stat -c %s "$file") bytes) |"
echo "| duration, $ROUNDS backups (export, fsync, rename) | $(printf '%.2f s ' "${secs[@]}")|"
echo "| median | $(printf '%.2f' "$median") s |"
