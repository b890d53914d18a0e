#!/usr/bin/env bash
# What an Idempotency-Key costs a write: POST /item without a key and with
# a fresh key on every request (so every request stores one), on two
# shopd over copies of one store, interleaved round by round so a busy
# moment on the shared machine hits both alike; the medians and the cost.
# Then the bytes each kept key takes on disk: the data directories' growth
# per item written (sled), and PostgreSQL's idempotency_keys table with its
# index per row (PG=1).
#
#   bench/run.sh keyed                  # 5 rounds of 5 s each, sled
#   ROUNDS=7 DURATION=10 bench/run.sh keyed
#   PG=1 bench/run.sh keyed             # the same on PostgreSQL too
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-5}
CONNECTIONS=${CONNECTIONS:-64}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PG=${PG:-}

# shellcheck source=bench/lib.sh
source bench/lib.sh

body='BENCH_BODY={"name": "bench item", "price": 9.99}'

# serve NAME [FLAG...]: shopd with the shipped config.toml on its own
# store; sets ${NAME}_addr and ${NAME}_pid.
serve() {
    local name=$1
    start "$name" "$bin/shopd" --listen 127.0.0.1:0 --config config.toml "${@:2}"
    printf -v "${name}_addr" '%s' "$addr"
    printf -v "${name}_pid" '%s' "$pid"
}

# items ADDR: how many items shopd at ADDR holds (its gauge, read fresh).
metric() {
    curl -s "http://$1/metrics" | awk -v name="$2" '$1 == name {print $2}'
}

median() {
    sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

names=(plain keyed)
serve plain --data-dir "$work/plain" --stats-refresh-ms 100
serve keyed --data-dir "$work/keyed" --stats-refresh-ms 100
if [[ -n $PG ]]; then
    start_postgres
    for db in plain_pg keyed_pg; do
        as_pg "$pgbin/createdb" -h 127.0.0.1 -p "$port" -U shopd "$db"
        serve "$db" --database-url "postgres://shopd@127.0.0.1:$port/$db" --stats-refresh-ms 100
    done
    names+=(plain_pg keyed_pg)
fi

declare -A results
echo "round | $(printf '%s rps | ' "${names[@]}")" >&2
for round in $(seq 1 "$ROUNDS"); do
    line="$round"
    for name in "${names[@]}"; do
        addr_var="${name}_addr"
        keyed=()
        [[ $name == keyed* ]] && keyed=(BENCH_KEYED=1)
        read -r rps _ _ <<<"$(load "${keyed[@]}" BENCH_METHOD=POST BENCH_PATH=/item "$body" "http://${!addr_var}")"
        results[$name]+="$rps "
        line+=" | $rps"
    done
    echo "$line" >&2
done

echo
echo "| POST /item, $CONNECTIONS connections, ${ROUNDS} rounds of ${DURATION} s | median rps | cost of the key |"
echo "|---|---:|---:|"
for pair in "plain keyed" "plain_pg keyed_pg"; do
    read -r plain keyed <<<"$pair"
    [[ -z ${results[$plain]:-} ]] && continue
    p=$(tr ' ' '\n' <<<"${results[$plain]}" | grep . | median)
    k=$(tr ' ' '\n' <<<"${results[$keyed]}" | grep . | median)
    cost=$(awk -v p="$p" -v k="$k" 'BEGIN { printf "%.1f%%", (1 - k / p) * 100 }')
    echo "| $plain, no key | $(printf '%.0f' "$p") | |"
    echo "| $keyed, a fresh Idempotency-Key each | $(printf '%.0f' "$k") | $cost |"
done

# Bytes on disk per kept key: the stores are stopped (flushed) first.
sleep 0.3 # one stats refresh, so the gauges are current
plain_items=$(metric "$plain_addr" shopd_items)
keyed_items=$(metric "$keyed_addr" shopd_items)
keys=$(metric "$keyed_addr" shopd_idempotency_keys)
stop "$plain_pid"
stop "$keyed_pid"
plain_bytes=$(du -sb "$work/plain" | cut -f1)
keyed_bytes=$(du -sb "$work/keyed" | cut -f1)
echo
echo "- sled: $plain_items items in $plain_bytes bytes without keys; $keyed_items items and $keys keys in $keyed_bytes bytes with them:" \
    "$(awk -v pb="$plain_bytes" -v pi="$plain_items" -v kb="$keyed_bytes" -v ki="$keyed_items" \
        'BEGIN { printf "%.0f bytes per item, %.0f per item with its key: about %.0f bytes per key", pb / pi, kb / ki, kb / ki - pb / pi }')"
if [[ -n $PG ]]; then
    per_row=$(as_pg "$pgbin/psql" -h 127.0.0.1 -p "$port" -U shopd -d keyed_pg -Atc \
        "SELECT count(*) || ' keys, ' || pg_total_relation_size('idempotency_keys') || ' bytes (table, index, TOAST): ' || round(pg_total_relation_size('idempotency_keys')::numeric / greatest(count(*), 1)) || ' bytes per key' FROM idempotency_keys")
    echo "- PostgreSQL: $per_row"
fi
echo "- machine: $(nproc) CPUs, shopd pinned to CPU $SERVER_CPU, wrk to CPU $LOAD_CPU; release build, shipped config.toml (sync durability, access log on)"
