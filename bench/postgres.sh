#!/usr/bin/env bash
# shopd on PostgreSQL beside pgbench on the same database, in one run.
#
# Starts a throwaway PostgreSQL cluster (Debian's binaries) pinned to the
# server CPU with shopd, seeds it through shopd's store code, then measures
# each scenario twice: over HTTP through shopd (wrk, 64 connections), and as
# the same SQL statement straight to the database (pgbench, the same number of
# connections, prepared statements). shopd / pgbench is what the HTTP layer,
# JSON and pricing cost on top of the database's own limit.
#
#   bench/postgres.sh            # also: bench/run.sh postgres
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
ITEMS=${ITEMS:-100}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

# shellcheck source=bench/lib.sh
source bench/lib.sh

start_postgres
"$pgbin/psql" -q -h 127.0.0.1 -p "$port" -U shopd -d postgres -c "CREATE DATABASE bench"
url="postgres://shopd@127.0.0.1:$port/bench"

"$bin/examples/seed" "$url" "$ITEMS" "$ITEMS" >/dev/null
# Not the `shopd` helper: it gives a data directory, which shopd refuses
# together with a database URL.
start pg "$bin/shopd" --listen 127.0.0.1:0 --config config.toml --database-url "$url"
shopd_pid=$pid

# pgbench NAME SQL: the statement at $CONNECTIONS connections; prints tps.
pgbench_tps() {
    local script="$work/$1.sql"
    printf '\\set a random(1, %s)\n%s\n' "$ITEMS" "$2" >"$script"
    taskset -c "$LOAD_CPU" "$pgbin/pgbench" -n -M prepared -c "$CONNECTIONS" -j 1 \
        -T "$DURATION" -f "$script" -h 127.0.0.1 -p "$port" -U shopd bench 2>/dev/null |
        awk '/^tps = / {print $3}'
}

rows=()
compare() {
    local name=$1 http=$2 sql=$3
    rows+=("$name|$http|$sql")
}

ids="BENCH_IDS=$ITEMS"
item_body='BENCH_BODY={"name": "bench item", "price": 9.99}'
compare "GET /item/{id}" \
    "$(load $ids BENCH_PATH=/item/{a} "http://$addr")" \
    "$(pgbench_tps get_item 'SELECT id, name, price, deleted FROM items WHERE id = :a;')"
compare "GET /cart/{id} (3 lines)" \
    "$(load $ids BENCH_PATH=/cart/{a} "http://$addr")" \
    "$(pgbench_tps get_cart 'SELECT c.id, l.item_id, l.quantity, i.name, i.price, i.deleted FROM carts c LEFT JOIN cart_lines l ON l.cart_id = c.id LEFT JOIN items i ON i.id = l.item_id WHERE c.id = :a ORDER BY l.position;')"
compare "GET /item?limit=10" \
    "$(load $ids BENCH_PATH=/item?limit=10 "http://$addr")" \
    "$(pgbench_tps list_items "SELECT id, name, price, deleted FROM items WHERE NOT deleted AND price >= '-Infinity' AND price <= 'Infinity' ORDER BY id LIMIT 10 OFFSET 0;")"
compare "POST /item" \
    "$(load $ids BENCH_METHOD=POST BENCH_PATH=/item "$item_body" "http://$addr")" \
    "$(pgbench_tps create_item "INSERT INTO items (name, price) VALUES ('bench item', 9.99) RETURNING id, name, price, deleted;")"
# An add as shopd sends it: BEGIN, the locks, the statement that upserts
# the line, stores the cart's totals in its mark and reads the cart back, and COMMIT,
# pipelined (src/store/postgres/add.rs).
add_sql='\startpipeline
BEGIN;
SELECT (SELECT deleted FROM items WHERE id = :a FOR SHARE), EXISTS (SELECT 1 FROM carts WHERE id = :a FOR UPDATE);
WITH added AS (INSERT INTO cart_lines (cart_id, item_id, quantity) SELECT :a, :a, 1 WHERE EXISTS (SELECT 1 FROM items WHERE id = :a AND NOT deleted) AND EXISTS (SELECT 1 FROM carts WHERE id = :a) AND ((SELECT COUNT(*) FROM cart_lines WHERE cart_id = :a) < 1000 OR EXISTS (SELECT 1 FROM cart_lines WHERE cart_id = :a AND item_id = :a)) ON CONFLICT (cart_id, item_id) DO UPDATE SET quantity = cart_lines.quantity + 1 RETURNING item_id, quantity, position), lines AS (SELECT l.item_id, l.quantity, l.position, TRUE AS changed, i.name, i.price, i.deleted FROM added l JOIN items i ON i.id = l.item_id UNION ALL SELECT l.item_id, l.quantity, l.position, FALSE, i.name, i.price, i.deleted FROM cart_lines l JOIN items i ON i.id = l.item_id WHERE l.cart_id = :a AND NOT EXISTS (SELECT 1 FROM added a WHERE a.item_id = l.item_id)), marked AS (INSERT INTO cart_dirty (cart_id, price, quantity) SELECT :a, 0::FLOAT8 + COALESCE(SUM(l.price * l.quantity::FLOAT8 ORDER BY l.position) FILTER (WHERE NOT l.deleted), 0), COALESCE(SUM(l.quantity), 0)::BIGINT FROM lines l HAVING EXISTS (SELECT 1 FROM added) ON CONFLICT (cart_id) DO UPDATE SET price = EXCLUDED.price, quantity = EXCLUDED.quantity, marked_at = EXCLUDED.marked_at) SELECT changed, item_id, quantity, name, price, deleted FROM lines ORDER BY position;
COMMIT;
\endpipeline'
compare "POST /cart/{id}/add/{item_id}, item n to cart n" \
    "$(load $ids BENCH_METHOD=POST BENCH_PATH=/cart/{a}/add/{a} "http://$addr")" \
    "$(pgbench_tps add "$add_sql")"
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$shopd_pid/status")
stop "$shopd_pid"

echo
echo "| scenario ($CONNECTIONS connections, ${DURATION}s, PostgreSQL) | shopd rps | p50 ms | p99 ms | pgbench tps, same SQL | shopd / pgbench |"
echo "|---|---:|---:|---:|---:|---:|"
for entry in "${rows[@]}"; do
    IFS='|' read -r name http sql <<<"$entry"
    read -r rps p50 p99 <<<"$http"
    ratio=$(awk -v a="$rps" -v b="$sql" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
    echo "| $name | $(printf '%.0f' "$rps") | $p50 | $p99 | $(printf '%.0f' "$sql") | $ratio |"
done
echo
echo "- shopd: pool of 16 connections (the default); pgbench: $CONNECTIONS connections, prepared statements"
echo "- PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}') and shopd pinned to CPU $SERVER_CPU, wrk and pgbench to CPU $LOAD_CPU; fsync and synchronous_commit on"
echo "- shopd RSS after the run: $((rss_kib / 1024)) MiB; $ITEMS items and $ITEMS carts of 3 lines"
echo "- machine: $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(free -g | awk '/Mem:/ {print $2}') GiB"
