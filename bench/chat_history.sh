#!/usr/bin/env bash
# Chat lines delivered per second with history on (the default, 100 lines a
# room, kept in the data directory) and off (chat_history_lines = 0), and
# the same over a chat bus (a local nats-server with JetStream: history in
# its stream, or off), in one run: four shopd side by side, ROUNDS
# interleaved rounds of examples/chat_bench (rooms of 2 and 50 members),
# medians printed; before them, the memory of 1000 rooms with 100 lines of
# 64 bytes each (examples/chat_history_memory) on each, and the bytes the
# JetStream stream holds for them.
#
#   bench/chat_history.sh            # ROUNDS=5 DELIVERIES=2000000 by default
#   MODES="on off" bench/chat_history.sh   # without the bus
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
MODES=${MODES:-on off js bus}

# free_port: a TCP port nobody listens on now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

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

declare -A addr_of pid_of
if [[ " $MODES " == *" js "* || " $MODES " == *" bus "* ]]; then
    nats_port=$(free_port) nats_monitor=$(free_port)
    nats-server -a 127.0.0.1 -p "$nats_port" -m "$nats_monitor" -js -sd "$work/nats" \
        >"$work/nats.log" 2>&1 &
    pids+=("$!")
    for _ in $(seq 1 200); do
        curl -sf "http://127.0.0.1:$nats_monitor/healthz" >/dev/null && break
        sleep 0.05
    done
fi
for mode in $MODES; do
    case $mode in
        on) start on ;;
        off) start off --chat-history-lines 0 ;;
        js) start js --chat-bus "nats://127.0.0.1:$nats_port" ;;
        bus) start bus --chat-bus "nats://127.0.0.1:$nats_port" --chat-history-lines 0 ;;
    esac
    addr_of[$mode]=$addr pid_of[$mode]=$pid
done

# Memory first, on fresh servers: afterwards the allocator holds what the
# throughput runs freed, and RSS would hide what history takes.
for mode in $MODES; do
    echo -n "history $mode: "
    "$bin/examples/chat_history_memory" --url "ws://${addr_of[$mode]}" --pid "${pid_of[$mode]}"
    if [[ $mode == js ]]; then
        curl -s "http://127.0.0.1:$nats_monitor/jsz?streams=true" | jq -r \
            '.account_details[].stream_detail[] | select(.name == "SHOPD_CHAT_HISTORY")
             | "JetStream stream: \(.state.messages) lines, \(.state.bytes) bytes, \(.state.bytes / .state.messages | floor) bytes per line"'
    fi
done
echo

for round in $(seq 1 "$ROUNDS"); do
    for mode in $MODES; do
        "$bin/examples/chat_bench" --url "ws://${addr_of[$mode]}" --deliveries "$DELIVERIES" --latency-lines 1 \
            | grep "^room of" | sed "s/^/$mode /" | tee -a "$work/rates"
    done
done
echo
echo "median lines/s delivered over $ROUNDS rounds (on/off: embedded; js/bus: over NATS, history in JetStream/off):"
for mode in $MODES; do
    for members in 2 50; do
        median=$(grep "^$mode room of $members:" "$work/rates" \
            | sed 's/.*s: \([0-9]*\) lines\/s delivered.*/\1/' | sort -n \
            | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
        echo "history $mode, room of $members: $median"
    done
done
