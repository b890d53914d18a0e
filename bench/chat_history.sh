#!/usr/bin/env bash
# Chat lines delivered per second with history on (the default, 100 lines a
# room, kept in the data directory) and off (chat_history_lines = 0), in
# one run: two shopd side by side, ROUNDS interleaved rounds of
# examples/chat_bench (rooms of 2 and 50 members), medians printed; before
# them, the memory of 1000 rooms with 100 lines of 64 bytes each
# (examples/chat_history_memory) on each.
#
#   bench/chat_history.sh            # ROUNDS=5 DELIVERIES=2000000 by default
set -euo pipefail
ROUNDS=${ROUNDS:-5}
DELIVERIES=${DELIVERIES:-2000000}
cargo build --release --quiet --bin shopd --example chat_bench --example chat_history_memory
bin=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
FAST=(--chat-rate-per-sec 1000000 --chat-rate-burst 1000000)

# start NAME ARGS...: a shopd on a free port; sets $addr and $pid.
start() {
    local name=$1
    shift
    "$bin/shopd" --data-dir "$work/$name" --listen 127.0.0.1:0 "${FAST[@]}" "$@" \
        >"$work/$name.out" 2>"$work/$name.err" &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 1 600); do
        if grep -q "listening on http://" "$work/$name.out" 2>/dev/null; then
            addr=$(sed -n 's/.*listening on http:\/\///p' "$work/$name.out" | head -n 1)
            return
        fi
        sleep 0.05
    done
    echo "shopd $name did not start" >&2
    exit 1
}

start on
on_addr=$addr on_pid=$pid
start off --chat-history-lines 0
off_addr=$addr off_pid=$pid

# Memory first, on fresh servers: afterwards the allocator holds what the
# throughput runs freed, and RSS would hide what history takes.
for mode in on off; do
    url=ws://$on_addr pid=$on_pid
    [[ $mode == off ]] && url=ws://$off_addr pid=$off_pid
    echo -n "history $mode: "
    "$bin/examples/chat_history_memory" --url "$url" --pid "$pid"
done
echo

for round in $(seq 1 "$ROUNDS"); do
    for mode in on off; do
        url=ws://$on_addr
        [[ $mode == off ]] && url=ws://$off_addr
        "$bin/examples/chat_bench" --url "$url" --deliveries "$DELIVERIES" --latency-lines 1 \
            | grep "^room of" | sed "s/^/$mode /" | tee -a "$work/rates"
    done
done
echo
echo "median lines/s delivered over $ROUNDS rounds:"
for mode in on off; do
    for members in 2 50; do
        median=$(grep "^$mode room of $members:" "$work/rates" \
            | sed 's/.*s: \([0-9]*\) lines\/s delivered.*/\1/' | sort -n \
            | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
        echo "history $mode, room of $members: $median"
    done
done
