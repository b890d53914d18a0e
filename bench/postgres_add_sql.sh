#!/usr/bin/env bash
# Where an add-to-cart's time goes in the database: the statements of an
# add as shopd sends them, run by pgbench straight against PostgreSQL
# (pipelined, prepared), against variants with one part taken out, each on
# a fresh copy of the same seeded database, round after round.
#
#   before   the statements before the cart totals: upsert, then read back
#   now      schema versions 2 to 4: BEGIN; lock; upsert + UPDATE of the
#            cart row's indexed totals + read back; COMMIT
#   no_lock  `now` without the lock statement
#   no_total `now` without the UPDATE of the cart's totals
#   bands    `now` on coarse bands: exact totals unindexed, their bands
#            (4 a doubling, generated columns) indexed, fillfactor 50,
#            so an add that stays in its bands is a HOT update
#   marks    the add marks the cart (INSERT INTO cart_dirty ... ON
#            CONFLICT DO NOTHING) instead of updating it; a fold (1 run
#            in FOLD_WEIGHT) re-prices up to 100 marked carts in SQL
#   marked_totals  what shopd sends since schema version 5: the add
#            upserts the cart's totals into its mark (an unindexed, HOT
#            update when marked already); the fold copies them to the
#            carts' rows of marks untouched for a second
#   marked_no_lock  `marked_totals` without the lock statement
#   marked_cart_lock  `marked_totals` locking the cart only, not the item
#   marked_advisory  `marked_totals` with an advisory lock on the cart's id
#            instead of its row's lock
#   marked_new_line_lock  `marked_totals` locking the item only when the
#            add makes a new line (an existing line's cart is locked by a
#            price change of its item already)
#   function  `marked_totals` in one call of a PL/pgSQL function (the lock,
#            then the add in a fresh snapshot; `enable_seqscan` off as
#            the function's own setting): one statement, no explicit
#            transaction
#   function_no_set  `function` without its `enable_seqscan` setting
#   function_new_line_lock  `function` locking the item only for a new
#            line, as `marked_new_line_lock`
#   bare_one  one statement, no explicit transaction and no lock: the
#            upsert, a bare mark (a counter bumped on every add: a HOT
#            update when marked already) and the read back; the fold
#            re-prices marked carts in SQL
#
#   bench/postgres_add_sql.sh            # 3 rounds of 6 s, 16 connections
#   ROUNDS=5 VARIANTS="before no_total" bench/postgres_add_sql.sh
#   SPREAD=1 ITEMS=10000 bench/postgres_add_sql.sh  # a random item to a
#            random cart (most adds a new line to a cart few others touch)
#            instead of item n to cart n
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-6}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-16}
ITEMS=${ITEMS:-100}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
VARIANTS=${VARIANTS:-before now no_lock no_total}
SPREAD=${SPREAD:-}
FOLD_WEIGHT=${FOLD_WEIGHT:-200}

# shellcheck source=bench/lib.sh
source bench/lib.sh

start_postgres
psql_on() { "$pgbin/psql" -q -h 127.0.0.1 -p "$port" -U shopd -d "$@"; }
psql_on postgres -c "CREATE DATABASE seeded"
"$bin/examples/seed" "postgres://shopd@127.0.0.1:$port/seeded" "$ITEMS" "$ITEMS" >/dev/null
psql_on seeded -c "VACUUM ANALYZE"

lock="SELECT (SELECT deleted FROM items WHERE id = :b FOR SHARE), EXISTS (SELECT 1 FROM carts WHERE id = :a FOR UPDATE);"
lock_advisory="SELECT (SELECT deleted FROM items WHERE id = :b FOR SHARE), pg_advisory_xact_lock(:a);"
lock_cart="SELECT EXISTS (SELECT 1 FROM carts WHERE id = :a FOR UPDATE);"
lock_new_line="SELECT (SELECT deleted FROM items WHERE id = :b AND NOT EXISTS (SELECT 1 FROM cart_lines WHERE cart_id = :a AND item_id = :b) FOR SHARE), EXISTS (SELECT 1 FROM carts WHERE id = :a FOR UPDATE);"
added="WITH added AS (INSERT INTO cart_lines (cart_id, item_id, quantity) SELECT :a, :b, 1 WHERE EXISTS (SELECT 1 FROM items WHERE id = :b AND NOT deleted) AND EXISTS (SELECT 1 FROM carts WHERE id = :a) AND ((SELECT COUNT(*) FROM cart_lines WHERE cart_id = :a) < 1000 OR EXISTS (SELECT 1 FROM cart_lines WHERE cart_id = :a AND item_id = :b)) ON CONFLICT (cart_id, item_id) DO UPDATE SET quantity = cart_lines.quantity + 1 RETURNING item_id, quantity, position), lines AS (SELECT l.item_id, l.quantity, l.position, TRUE AS changed, i.name, i.price, i.deleted FROM added l JOIN items i ON i.id = l.item_id UNION ALL SELECT l.item_id, l.quantity, l.position, FALSE, i.name, i.price, i.deleted FROM cart_lines l JOIN items i ON i.id = l.item_id WHERE l.cart_id = :a AND NOT EXISTS (SELECT 1 FROM added a WHERE a.item_id = l.item_id))"
totals=", totals AS (UPDATE carts SET price = 0::FLOAT8 + COALESCE((SELECT SUM(l.price * l.quantity::FLOAT8 ORDER BY l.position) FILTER (WHERE NOT l.deleted) FROM lines l), 0), quantity = (SELECT COALESCE(SUM(l.quantity), 0)::BIGINT FROM lines l) WHERE id = :a AND EXISTS (SELECT 1 FROM added))"
read=" SELECT changed, item_id, quantity, name, price, deleted FROM lines ORDER BY position;"
sums=", sums AS (SELECT 0::FLOAT8 + COALESCE(SUM(l.price * l.quantity::FLOAT8 ORDER BY l.position) FILTER (WHERE NOT l.deleted), 0) AS price, COALESCE(SUM(l.quantity), 0)::BIGINT AS quantity FROM lines l)"
mark=", marked AS (INSERT INTO cart_dirty (cart_id) SELECT :a WHERE EXISTS (SELECT 1 FROM added) ON CONFLICT DO NOTHING)"
mark_seq=", marked AS (INSERT INTO cart_dirty (cart_id) SELECT :a WHERE EXISTS (SELECT 1 FROM added) ON CONFLICT (cart_id) DO UPDATE SET seq = cart_dirty.seq + 1)"
mark_totals=", marked AS (INSERT INTO cart_dirty (cart_id, price, quantity) SELECT :a, 0::FLOAT8 + COALESCE(SUM(l.price * l.quantity::FLOAT8 ORDER BY l.position) FILTER (WHERE NOT l.deleted), 0), COALESCE(SUM(l.quantity), 0)::BIGINT FROM lines l HAVING EXISTS (SELECT 1 FROM added) ON CONFLICT (cart_id) DO UPDATE SET price = EXCLUDED.price, quantity = EXCLUDED.quantity, marked_at = EXCLUDED.marked_at)"
add_function="CREATE FUNCTION shopd_add(p_cart BIGINT, p_item BIGINT, p_max BIGINT) RETURNS TABLE (item_deleted BOOLEAN, cart_exists BOOLEAN, changed BOOLEAN, item_id BIGINT, quantity BIGINT, name TEXT, price FLOAT8, deleted BOOLEAN) LANGUAGE plpgsql SET enable_seqscan = off AS \$\$
#variable_conflict use_column
DECLARE d BOOLEAN; e BOOLEAN;
BEGIN
SELECT (SELECT i.deleted FROM items i WHERE i.id = p_item FOR SHARE), EXISTS (SELECT 1 FROM carts c WHERE c.id = p_cart FOR UPDATE) INTO d, e;
RETURN QUERY $(sed 's/:a/p_cart/g; s/:b/p_item/g; s/< 1000/< p_max/g' <<<"$added")$(sed 's/:a/p_cart/g' <<<"$mark_totals") SELECT d, e, l.changed, l.item_id, l.quantity, l.name, l.price, l.deleted FROM lines l ORDER BY l.position;
IF NOT FOUND THEN RETURN QUERY SELECT d, e, NULL::BOOLEAN, NULL::BIGINT, NULL::BIGINT, NULL::TEXT, NULL::FLOAT8, NULL::BOOLEAN; END IF;
END \$\$"
read_sum=" SELECT changed, item_id, quantity, name, price, deleted, (SELECT price FROM sums) FROM lines ORDER BY position;"
band="CREATE FUNCTION band(x FLOAT8) RETURNS INT IMMUTABLE LANGUAGE SQL RETURN CASE WHEN x = 0 THEN 0 ELSE sign(x)::INT * (1 + LEAST(4000, GREATEST(0, floor(4 * ln(abs(x)) / ln(2::FLOAT8) + 2000))))::INT END; ALTER TABLE carts SET (fillfactor = 50); DROP INDEX carts_by_price; DROP INDEX carts_by_quantity; ALTER TABLE carts ADD COLUMN price_band INT GENERATED ALWAYS AS (band(price)) STORED, ADD COLUMN quantity_band INT GENERATED ALWAYS AS (band(quantity::FLOAT8)) STORED; CREATE INDEX carts_by_price ON carts (price_band, id); CREATE INDEX carts_by_quantity ON carts (quantity_band, id); CLUSTER carts USING carts_pkey; ANALYZE carts"
fold_marks="WITH locked AS (SELECT id FROM carts WHERE id IN (SELECT cart_id FROM cart_dirty LIMIT 100) ORDER BY id FOR UPDATE SKIP LOCKED), gone AS (DELETE FROM cart_dirty d USING locked WHERE d.cart_id = locked.id RETURNING d.cart_id) UPDATE carts c SET price = 0::FLOAT8 + COALESCE((SELECT SUM(i.price * l.quantity::FLOAT8 ORDER BY l.position) FILTER (WHERE NOT i.deleted) FROM cart_lines l JOIN items i ON i.id = l.item_id WHERE l.cart_id = c.id), 0), quantity = (SELECT COALESCE(SUM(quantity), 0)::BIGINT FROM cart_lines WHERE cart_id = c.id) FROM gone g WHERE c.id = g.cart_id;"
fold_totals="WITH locked AS (SELECT id FROM carts WHERE id IN (SELECT cart_id FROM cart_dirty WHERE marked_at < now() - INTERVAL '1 second' LIMIT 100) ORDER BY id FOR UPDATE SKIP LOCKED), gone AS (DELETE FROM cart_dirty d USING locked WHERE d.cart_id = locked.id RETURNING d.cart_id, d.price, d.quantity) UPDATE carts c SET price = g.price, quantity = g.quantity FROM gone g WHERE c.id = g.cart_id;"

# setup NAME: SQL that turns the seeded schema into variant NAME's.
setup() {
    case $1 in
        bands) echo "$band" ;;
        marks) echo "DROP TABLE IF EXISTS cart_dirty; CREATE TABLE cart_dirty (cart_id BIGINT PRIMARY KEY)" ;;
        function) echo "DROP TABLE IF EXISTS cart_dirty; CREATE TABLE cart_dirty (cart_id BIGINT PRIMARY KEY, price FLOAT8 NOT NULL, quantity BIGINT NOT NULL, marked_at TIMESTAMPTZ NOT NULL DEFAULT now()) WITH (fillfactor = 50); $add_function" ;;
        function_no_set) echo "DROP TABLE IF EXISTS cart_dirty; CREATE TABLE cart_dirty (cart_id BIGINT PRIMARY KEY, price FLOAT8 NOT NULL, quantity BIGINT NOT NULL, marked_at TIMESTAMPTZ NOT NULL DEFAULT now()) WITH (fillfactor = 50); ${add_function/ SET enable_seqscan = off/}" ;;
        function_new_line_lock) echo "DROP TABLE IF EXISTS cart_dirty; CREATE TABLE cart_dirty (cart_id BIGINT PRIMARY KEY, price FLOAT8 NOT NULL, quantity BIGINT NOT NULL, marked_at TIMESTAMPTZ NOT NULL DEFAULT now()) WITH (fillfactor = 50); ${add_function/WHERE i.id = p_item FOR SHARE/WHERE i.id = p_item AND NOT EXISTS (SELECT 1 FROM cart_lines WHERE cart_id = p_cart AND item_id = p_item) FOR SHARE}" ;;
        bare_one) echo "DROP TABLE IF EXISTS cart_dirty; CREATE TABLE cart_dirty (cart_id BIGINT PRIMARY KEY, seq BIGINT NOT NULL DEFAULT 1, marked_at TIMESTAMPTZ NOT NULL DEFAULT now()) WITH (fillfactor = 50)" ;;
        marked_totals | marked_no_lock | marked_cart_lock | marked_new_line_lock | marked_advisory) echo "DROP TABLE IF EXISTS cart_dirty; CREATE TABLE cart_dirty (cart_id BIGINT PRIMARY KEY, price FLOAT8 NOT NULL, quantity BIGINT NOT NULL, marked_at TIMESTAMPTZ NOT NULL DEFAULT now()) WITH (fillfactor = 50)" ;;
    esac
}

# fold NAME: the background fold's pgbench script of variant NAME, if any.
fold() {
    case $1 in
        marks | bare_one) printf '%s\n' "$fold_marks" ;;
        marked_totals | marked_no_lock | marked_cart_lock | marked_new_line_lock | marked_advisory | function*) printf '%s\n' "$fold_totals" ;;
    esac
}

# script NAME: the pgbench script of variant NAME.
script() {
    printf '\\set a random(1, %s)\n' "$ITEMS"
    if [[ -n $SPREAD ]]; then
        printf '\\set b random(1, %s)\n' "$ITEMS"
    else
        printf '\\set b :a\n'
    fi
    case $1 in
        before)
            echo "INSERT INTO cart_lines (cart_id, item_id, quantity) SELECT c.id, i.id, 1 FROM carts c, items i WHERE c.id = :a AND i.id = :b AND NOT i.deleted AND ((SELECT COUNT(*) FROM cart_lines WHERE cart_id = :a) < 1000 OR EXISTS (SELECT 1 FROM cart_lines WHERE cart_id = :a AND item_id = :b)) ON CONFLICT (cart_id, item_id) DO UPDATE SET quantity = cart_lines.quantity + 1;"
            echo "SELECT c.id, l.item_id, l.quantity, i.name, i.price, i.deleted FROM carts c LEFT JOIN cart_lines l ON l.cart_id = c.id LEFT JOIN items i ON i.id = l.item_id WHERE c.id = :a ORDER BY l.position;"
            ;;
        now) printf '\\startpipeline\nBEGIN;\n%s\n%s%s%s\nCOMMIT;\n\\endpipeline\n' "$lock" "$added" "$totals" "$read" ;;
        no_lock) printf '\\startpipeline\nBEGIN;\n%s%s%s\nCOMMIT;\n\\endpipeline\n' "$added" "$totals" "$read" ;;
        no_total) printf '\\startpipeline\nBEGIN;\n%s\n%s%s\nCOMMIT;\n\\endpipeline\n' "$lock" "$added" "$read" ;;
        bands) printf '\\startpipeline\nBEGIN;\n%s\n%s%s%s\nCOMMIT;\n\\endpipeline\n' "$lock" "$added" "$totals" "$read" ;;
        marks) printf '\\startpipeline\nBEGIN;\n%s\n%s%s%s%s\nCOMMIT;\n\\endpipeline\n' "$lock" "$added" "$sums" "$mark" "$read_sum" ;;
        marked_totals) printf '\\startpipeline\nBEGIN;\n%s\n%s%s%s\nCOMMIT;\n\\endpipeline\n' "$lock" "$added" "$mark_totals" "$read" ;;
        bare_one) printf '%s%s%s\n' "$added" "$mark_seq" "$read" ;;
        function*) echo "SELECT * FROM shopd_add(:a, :b, 1000);" ;;
        marked_no_lock) printf '\\startpipeline\nBEGIN;\n%s%s%s\nCOMMIT;\n\\endpipeline\n' "$added" "$mark_totals" "$read" ;;
        marked_advisory) printf '\\startpipeline\nBEGIN;\n%s\n%s%s%s\nCOMMIT;\n\\endpipeline\n' "$lock_advisory" "$added" "$mark_totals" "$read" ;;
        marked_cart_lock) printf '\\startpipeline\nBEGIN;\n%s\n%s%s%s\nCOMMIT;\n\\endpipeline\n' "$lock_cart" "$added" "$mark_totals" "$read" ;;
        marked_new_line_lock) printf '\\startpipeline\nBEGIN;\n%s\n%s%s%s\nCOMMIT;\n\\endpipeline\n' "$lock_new_line" "$added" "$mark_totals" "$read" ;;
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
        fold "$variant" >"$work/$variant.fold.sql"
        psql_on postgres -c "CREATE DATABASE run_$n TEMPLATE seeded"
        schema=$(setup "$variant")
        if [[ -n $schema ]]; then psql_on "run_$n" -c "$schema"; fi
        scripts=(-f "$work/$variant.sql")
        if [[ -s $work/$variant.fold.sql ]]; then
            scripts=(-f "$work/$variant.sql@$FOLD_WEIGHT" -f "$work/$variant.fold.sql@1")
        fi
        tps=$(taskset -c "$LOAD_CPU" "$pgbin/pgbench" -n -M prepared -c "$CONNECTIONS" -j 1 \
            -T "$DURATION" "${scripts[@]}" -h 127.0.0.1 -p "$port" -U shopd "run_$n" 2>"$work/pgbench.err" |
            awk '/^tps = / {printf "%.0f", $3}')
        if [[ -z $tps ]]; then cat "$work/pgbench.err" >&2; fi
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
