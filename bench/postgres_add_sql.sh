#!/usr/bin/env bash
# Where an add-to-cart's time goes in the database: the statements of an
# add as shopd sends them, run by pgbench straight against PostgreSQL
# (pipelined, prepared), against variants with one part taken out, each on
# a fresh copy of the same seeded database, round after round.
#
#   before   the statements before the cart totals: upsert, then read back
#   now      BEGIN; lock; upsert + store totals + read back; COMMIT
#   no_lock  `now` without the lock statement
#   no_total `now` without the UPDATE of the cart's totals
#
#   bench/postgres_add_sql.sh            # 3 rounds of 6 s, 16 connections
#   ROUNDS=5 VARIANTS="before no_total" bench/postgres_add_sql.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-6}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-16}
ITEMS=${ITEMS:-100}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
VARIANTS=${VARIANTS:-before now no_lock no_total}

# shellcheck source=bench/lib.sh
source bench/lib.sh

start_postgres
psql_on() { "$pgbin/psql" -q -h 127.0.0.1 -p "$port" -U shopd -d "$@"; }
psql_on postgres -c "CREATE DATABASE seeded"
"$bin/examples/seed" "postgres://shopd@127.0.0.1:$port/seeded" "$ITEMS" "$ITEMS" >/dev/null
psql_on seeded -c "VACUUM ANALYZE"

lock="SELECT (SELECT deleted FROM items WHERE id = :a FOR SHARE), EXISTS (SELECT 1 FROM carts WHERE id = :a FOR UPDATE);"
added="WITH added AS (INSERT INTO cart_lines (cart_id, item_id, quantity) SELECT :a, :a, 1 WHERE EXISTS (SELECT 1 FROM items WHERE id = :a AND NOT deleted) AND EXISTS (SELECT 1 FROM carts WHERE id = :a) AND ((SELECT COUNT(*) FROM cart_lines WHERE cart_id = :a) < 1000 OR EXISTS (SELECT 1 FROM cart_lines WHERE cart_id = :a AND item_id = :a)) ON CONFLICT (cart_id, item_id) DO UPDATE SET quantity = cart_lines.quantity + 1 RETURNING item_id, quantity, position), lines AS (SELECT l.item_id, l.quantity, l.position, TRUE AS changed, i.name, i.price, i.deleted FROM added l JOIN items i ON i.id = l.item_id UNION ALL SELECT l.item_id, l.quantity, l.position, FALSE, i.name, i.price, i.deleted FROM cart_lines l JOIN items i ON i.id = l.item_id WHERE l.cart_id = :a AND NOT EXISTS (SELECT 1 FROM added a WHERE a.item_id = l.item_id))"
totals=", totals AS (UPDATE carts SET price = 0::FLOAT8 + COALESCE((SELECT SUM(l.price * l.quantity::FLOAT8 ORDER BY l.position) FILTER (WHERE NOT l.deleted) FROM lines l), 0), quantity = (SELECT COALESCE(SUM(l.quantity), 0)::BIGINT FROM lines l) WHERE id = :a AND EXISTS (SELECT 1 FROM added))"
read=" SELECT changed, item_id, quantity, name, price, deleted FROM lines ORDER BY position;"

# script NAME: the pgbench script of variant NAME.
script() {
    printf '\\set a random(1, %s)\n' "$ITEMS"
    case $1 in
        before)
            echo "INSERT INTO cart_lines (cart_id, item_id, quantity) SELECT c.id, i.id, 1 FROM carts c, items i WHERE c.id = :a AND i.id = :a AND NOT i.deleted AND ((SELECT COUNT(*) FROM cart_lines WHERE cart_id = :a) < 1000 OR EXISTS (SELECT 1 FROM cart_lines WHERE cart_id = :a AND item_id = :a)) ON CONFLICT (cart_id, item_id) DO UPDATE SET quantity = cart_lines.quantity + 1;"
            echo "SELECT c.id, l.item_id, l.quantity, i.name, i.price, i.deleted FROM carts c LEFT JOIN cart_lines l ON l.cart_id = c.id LEFT JOIN items i ON i.id = l.item_id WHERE c.id = :a ORDER BY l.position;"
            ;;
        now) printf '\\startpipeline\nBEGIN;\n%s\n%s%s%s\nCOMMIT;\n\\endpipeline\n' "$lock" "$added" "$totals" "$read" ;;
        no_lock) printf '\\startpipeline\nBEGIN;\n%s%s%s\nCOMMIT;\n\\endpipeline\n' "$added" "$totals" "$read" ;;
        no_total) printf '\\startpipeline\nBEGIN;\n%s\n%s%s\nCOMMIT;\n\\endpipeline\n' "$lock" "$added" "$read" ;;
        *) echo "unknown variant $1" >&2 && exit 1 ;;
    esac
}

declare -A results
n=0
for round in $(seq 1 "$ROUNDS"); do
    line="round $round:"
    for variant in $VARIANTS; do
        n=$((n + 1))
        script "$variant" >"$work/$variant.sql"
        psql_on postgres -c "CREATE DATABASE run_$n TEMPLATE seeded"
        tps=$(taskset -c "$LOAD_CPU" "$pgbin/pgbench" -n -M prepared -c "$CONNECTIONS" -j 1 \
            -T "$DURATION" -f "$work/$variant.sql" -h 127.0.0.1 -p "$port" -U shopd "run_$n" 2>/dev/null |
            awk '/^tps = / {printf "%.0f", $3}')
        psql_on postgres -c "DROP DATABASE run_$n"
        results[$variant]+="$tps "
        line+=" $variant $tps"
    done
    echo "$line" >&2
done

echo
echo "| add-to-cart's statements, pgbench, $CONNECTIONS connections, ${DURATION}s rounds | tps by round |"
echo "|---|---|"
for variant in $VARIANTS; do
    echo "| $variant | ${results[$variant]% } |"
done
echo
echo "- PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}') pinned to CPU $SERVER_CPU, pgbench to CPU $LOAD_CPU; $ITEMS items and $ITEMS carts of 3 lines, a fresh copy per run"
