# Shared by bench/run.sh and bench/postgres.sh: wrk, the build, starting
# and stopping pinned servers, one wrk run, the table rows. Sourced, not run.
# Expects DURATION, CONNECTIONS, SERVER_CPU and LOAD_CPU to be set.

if ! command -v wrk >/dev/null; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        apt-get update -qq && apt-get install -y -qq wrk >/dev/null
    else
        echo "bench/run.sh needs wrk (apt-get install wrk)" >&2
        exit 1
    fi
fi

# BENCH_BIN: a directory with shopd and examples/{ceiling,seed} built
# already (release), to measure those instead of building this tree.
if [[ -n ${BENCH_BIN:-} ]]; then
    bin=$BENCH_BIN
else
    cargo build --release --quiet --bin shopd --example ceiling --example seed
    bin=${CARGO_TARGET_DIR:-target}/release
fi
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# start NAME CMD...: runs CMD pinned to the server CPU, waits for its
# "listening on http://ADDR" line, sets $addr and $pid.
start() {
    local name=$1
    shift
    local out="$work/$name.out"
    local started=$(date +%s.%N)
    taskset -c "$SERVER_CPU" "$@" >"$out" 2>"$work/$name.err" &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 1 600); do
        if grep -q "listening on http://" "$out" 2>/dev/null; then
            addr=$(sed -n 's/.*listening on http:\/\///p' "$out" | head -n 1)
            startup_ms=$(echo "($(date +%s.%N) - $started) * 1000" | bc)
            return
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$work/$name.err" >&2
            echo "$name did not start" >&2
            exit 1
        fi
        sleep 0.05
    done
    echo "$name did not start in 30 s" >&2
    exit 1
}

stop() {
    kill -TERM "$1"
    wait "$1" 2>/dev/null || true
}

# shopd NAME [FLAG...]: shopd as users run it, with the shipped config.toml
# (access log on, durability sync); only the data directory and the
# address differ. Its log goes to a file, as under a service manager.
shopd() {
    start "$1" "$bin/shopd" --data-dir "$work/$1" --listen 127.0.0.1:0 \
        --config config.toml "${@:2}"
}

# load NAME=VALUE... URL: one wrk run; prints "rps p50_ms p99_ms".
load() {
    local url=${!#}
    local out
    out=$(env "${@:1:$#-1}" taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" \
        --latency -s bench/random_paths.lua "$url")
    local rps p50 p99 errors
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    errors=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")
    if [[ -n $errors ]]; then
        echo "warning: $errors non-2xx answers in $*" >&2
    fi
    echo "$rps $(to_ms "$p50") $(to_ms "$p99")"
}

to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000;
        printf "%.2f", n }'
}

rows=()
row() {
    rows+=("$1|$2")
}

# PostgreSQL refuses to run as root: its commands run as the postgres user.
as_pg() {
    if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# start_postgres: a throwaway PostgreSQL cluster in $work/pg on a free
# port, pinned to the server CPU, user shopd; sets $pgbin, $pgdir and $port.
start_postgres() {
    pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [[ -z $pgbin ]]; then
        echo "$0 needs PostgreSQL (apt-get install postgresql)" >&2
        exit 1
    fi
    pgdir="$work/pg"
    mkdir -p "$pgdir"
    if [[ $(id -u) == 0 ]]; then
        chmod 755 "$work" # the postgres user goes through it to its own directory
        chown postgres: "$pgdir"
    fi
    as_pg "$pgbin/initdb" -D "$pgdir/data" -U shopd --auth=trust -E UTF8 >/dev/null
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_pg taskset -c "$SERVER_CPU" "$pgbin/postgres" -D "$pgdir/data" -p "$port" -k "$pgdir" \
        -c listen_addresses=127.0.0.1 -c max_connections=300 -c shared_buffers=256MB \
        >"$pgdir/log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 600); do
        "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$port" && break
        sleep 0.05
    done
}
