#!/usr/bin/env bash
# shopd on PostgreSQL, this build against a baseline build, interleaved:
# one throwaway cluster, one database per build (each seeded by that
# build's own seed example, so an older schema stays older), both shopds
# started once, then each round runs every scenario against one and then
# the other, so a busy moment on the shared machine falls on both alike.
# Prints each round and, per scenario, the median rps of each build and
# the change.
#
#   BASELINE=/path/to/old/release bench/postgres_interleaved.sh
#   ROUNDS=7 DURATION=5 SCENARIOS="add item" BASELINE=... bench/postgres_interleaved.sh
#
# BASELINE: a directory holding an older build's shopd and examples/seed.
# BASELINE_CONFIG: the config file it runs with (default: the shipped
# config.toml; an older binary may need its own era's file).
# SCENARIOS: any of get_item get_cart list post_item add (default: all).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-5}
CONNECTIONS=${CONNECTIONS:-64}
ITEMS=${ITEMS:-100}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
SCENARIOS=${SCENARIOS:-get_item get_cart list post_item add}
BASELINE=${BASELINE:?BASELINE=/path/to/a/release/dir with shopd and examples/seed}
BASELINE_CONFIG=${BASELINE_CONFIG:-config.toml}

# shellcheck source=bench/lib.sh
source bench/lib.sh

start_postgres
psql_admin() {
    "$pgbin/psql" -q -h 127.0.0.1 -p "$port" -U shopd -d postgres -c "$1"
}

# serve NAME BUILD_DIR CONFIG: its own database, seeded by its own seed
# example; sets ${NAME}_addr and ${NAME}_pid.
serve() {
    local name=$1 dir=$2 config=$3
    psql_admin "CREATE DATABASE $name"
    local url="postgres://shopd@127.0.0.1:$port/$name"
    "$dir/examples/seed" "$url" "$ITEMS" "$ITEMS" >/dev/null
    start "$name" "$dir/shopd" --listen 127.0.0.1:0 --config "$config" --database-url "$url"
    printf -v "${name}_addr" '%s' "$addr"
    printf -v "${name}_pid" '%s' "$pid"
}
serve after "$bin" config.toml
serve before "$BASELINE" "$BASELINE_CONFIG"

# scenario NAME ADDR: one wrk run of scenario NAME; prints its rps.
scenario() {
    local ids="BENCH_IDS=$ITEMS" url="http://$2"
    case $1 in
        get_item) load $ids BENCH_PATH=/item/{a} "$url" ;;
        get_cart) load $ids BENCH_PATH=/cart/{a} "$url" ;;
        list) load $ids BENCH_PATH=/item?limit=10 "$url" ;;
        post_item) load $ids BENCH_METHOD=POST BENCH_PATH=/item \
            'BENCH_BODY={"name": "bench item", "price": 9.99}' "$url" ;;
        add) load $ids BENCH_METHOD=POST BENCH_PATH=/cart/{a}/add/{a} "$url" ;;
        *) echo "unknown scenario $1" >&2 && exit 1 ;;
    esac | awk '{ print $1 }'
}

trap 'cp $work/after.err $work/after.out $work/before.err /tmp/pgadd-logs/ 2>/dev/null; cleanup' EXIT
echo "interleaved: $ROUNDS rounds of ${DURATION}s per build and scenario, $CONNECTIONS connections" >&2
declare -A results
for round in $(seq 1 "$ROUNDS"); do
    line="round $round:"
    for name in $SCENARIOS; do
        # Which build goes first alternates by round.
        order=(before after)
        ((round % 2)) || order=(after before)
        for build in "${order[@]}"; do
            addr_var="${build}_addr"
            rps=$(scenario "$name" "${!addr_var}")
            results[$name.$build]+="$rps "
            line+=" $name/$build $(printf '%.0f' "$rps")"
        done
    done
    echo "$line" >&2
done

median() {
    tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END {
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo
echo "| scenario ($CONNECTIONS connections, PostgreSQL), median of $ROUNDS rounds of ${DURATION}s | before rps | after rps | change | before, by round | after, by round |"
echo "|---|---:|---:|---:|---|---|"
for name in $SCENARIOS; do
    before=$(median "${results[$name.before]}")
    after=$(median "${results[$name.after]}")
    change=$(awk -v a="$after" -v b="$before" 'BEGIN { printf "%+.0f%%", (a / b - 1) * 100 }')
    rounds_of() { tr ' ' '\n' <<<"$1" | grep -v '^$' | xargs printf '%.0f ' | sed 's/ $//'; }
    echo "| $name | $(printf '%.0f' "$before") | $(printf '%.0f' "$after") | $change | $(rounds_of "${results[$name.before]}") | $(rounds_of "${results[$name.after]}") |"
done
echo
echo "- before: $BASELINE; after: $bin"
echo "- PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}') and both shopds pinned to CPU $SERVER_CPU, wrk to CPU $LOAD_CPU; fsync and synchronous_commit on; $ITEMS items and $ITEMS carts of 3 lines"
echo "- machine: $(nproc) CPUs, load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
