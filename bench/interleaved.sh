#!/usr/bin/env bash
# GET /item/{id} against the warp ceiling, interleaved: every server is
# started once, then each round loads them one after the other for a few
# seconds (ceiling, shopd, shopd with the access log off, and the same for
# a baseline binary if given), so a busy moment on the shared machine hits
# all of them alike. Prints each round and the medians, as rps and as a
# fraction of the ceiling of the same round.
#
#   bench/run.sh interleaved                          # 5 rounds of 3 s each
#   BASELINE=/path/to/old/shopd bench/run.sh interleaved   # before and after
#   ROUNDS=7 DURATION=5 bench/run.sh interleaved
#
# CONFIG: the config file every shopd runs with (default: the shipped
# config.toml; a baseline older than it may need its own era's file).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-3}
ROUNDS=${ROUNDS:-5}
CONNECTIONS=${CONNECTIONS:-64}
ITEMS=${ITEMS:-100}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BASELINE=${BASELINE:-}
CONFIG=${CONFIG:-config.toml}

# shellcheck source=bench/lib.sh
source bench/lib.sh

"$bin/examples/seed" "$work/seeded" "$ITEMS" "$ITEMS" >/dev/null

# cpu_ticks PID: the CPU time (user + system, all threads) PID has used,
# in clock ticks.
cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# serve NAME BINARY [FLAG...]: a shopd over its own copy of the seeded
# store, with the shipped config.toml; sets ${NAME}_addr.
serve() {
    local name=$1 binary=$2
    cp -r "$work/seeded" "$work/$name"
    start "$name" "$binary" --data-dir "$work/$name" --listen 127.0.0.1:0 \
        --config "$CONFIG" "${@:3}"
    printf -v "${name}_addr" '%s' "$addr"
    printf -v "${name}_pid" '%s' "$pid"
}

quiet=(--log-level "info,shopd::access=warn")
start ceiling "$bin/examples/ceiling" 127.0.0.1:0
ceiling_addr=$addr
ceiling_pid=$pid
serve shopd "$bin/shopd"
serve shopd_quiet "$bin/shopd" "${quiet[@]}"
names=(ceiling shopd shopd_quiet)
if [[ -n $BASELINE ]]; then
    serve baseline "$BASELINE"
    serve baseline_quiet "$BASELINE" "${quiet[@]}"
    names+=(baseline baseline_quiet)
fi

echo "interleaved: $ROUNDS rounds of ${DURATION}s per server, $CONNECTIONS connections, GET /item/{id} over $ITEMS items" >&2
# Besides throughput, the server's own CPU time per request: on a machine
# whose other tenants take CPU 0 now and then, rps moves with them, while
# the CPU a request costs the server moves much less.
tick_us=$((1000000 / $(getconf CLK_TCK)))
declare -A results cpu
for round in $(seq 1 "$ROUNDS"); do
    line="round $round:"
    for name in "${names[@]}"; do
        addr_var="${name}_addr" pid_var="${name}_pid"
        ticks=$(cpu_ticks "${!pid_var}")
        read -r rps _ _ <<<"$(load BENCH_IDS="$ITEMS" BENCH_PATH=/item/{a} "http://${!addr_var}")"
        ticks=$(($(cpu_ticks "${!pid_var}") - ticks))
        us=$(awk -v t="$ticks" -v u="$tick_us" -v r="$rps" -v d="$DURATION" \
            'BEGIN { printf "%.2f", t * u / (r * d) }')
        results[$name]+="$rps "
        cpu[$name]+="$us "
        line+=" $name $(printf '%.0f' "$rps") rps ${us} us"
    done
    echo "$line" >&2
done

median() {
    tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END {
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# The fraction of each round's ceiling, then its median.
fractions() {
    local -a server=(${results[$1]}) ceiling=(${results[ceiling]})
    local out=""
    for i in "${!server[@]}"; do
        out+="$(awk -v a="${server[$i]}" -v b="${ceiling[$i]}" 'BEGIN { printf "%.3f", a / b }') "
    done
    echo "$out"
}

ceiling_cpu=$(median "${cpu[ceiling]}")
echo
echo "| GET /item/{id}, $CONNECTIONS connections, median of $ROUNDS rounds of ${DURATION}s | rps | of ceiling | by round | server CPU µs per request | of ceiling, by CPU |"
echo "|---|---:|---:|---|---:|---:|"
for name in "${names[@]}"; do
    case $name in
        ceiling) label="ceiling: warp, fixed JSON" ;;
        shopd) label="shopd (shipped config.toml, access log on)" ;;
        shopd_quiet) label="shopd, access log off" ;;
        baseline) label="baseline $BASELINE (access log on)" ;;
        baseline_quiet) label="baseline, access log off" ;;
    esac
    rps=$(median "${results[$name]}")
    us=$(median "${cpu[$name]}")
    by_cpu=$(awk -v c="$ceiling_cpu" -v u="$us" 'BEGIN { printf "%.2f", c / u }')
    if [[ $name == ceiling ]]; then
        echo "| $label | $(printf '%.0f' "$rps") | 1.00 | | $us | 1.00 |"
    else
        by_round=$(fractions "$name")
        echo "| $label | $(printf '%.0f' "$rps") | $(printf '%.2f' "$(median "$by_round")") | ${by_round% } | $us | $by_cpu |"
    fi
done
echo
echo "- machine: $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)); servers on CPU $SERVER_CPU, wrk on CPU $LOAD_CPU"
