#!/usr/bin/env bash
# Counted, not timed: kv_server against redis-server on the same redis-benchmark load, one
# request in flight per client (-P 1), where their CPU time per request is level within the
# noise of this 2-core VM (docs/servers.md). Prints, for each server and client count:
#   - user-space instructions per request (valgrind --tool=callgrind; startup included);
#   - system calls per request, and how many of them are epoll waits (strace -c -f).
#
#     bash scripts/vs_redis_counts.sh            # PING_INLINE, PING_MBULK, INCR; -c 50 and 500
#     N=5000 bash scripts/vs_redis_counts.sh     # fewer requests per test (default 20000)
#
# Needs valgrind, strace, redis-server and redis-benchmark (installed with apt-get if missing).
# Takes about 10 minutes: both tools slow the servers down many times, which changes how
# requests batch, so compare the two servers within one run of this script only.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    '') ;;
    *) echo "usage: bash scripts/vs_redis_counts.sh  (N=requests per test)" >&2; exit 2 ;;
esac
n=${N:-20000}
tests="ping_inline ping_mbulk incr"
need=()
for tool in valgrind:valgrind strace:strace redis-server:redis-server redis-benchmark:redis-tools; do
    command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build -q --release --example kv_server
out=$(mktemp -d)
server=
trap '[ -z "$server" ] || kill "$server" 2>/dev/null || true; rm -rf "$out"' EXIT

# start NAME PORT WRAPPER...: the server NAME on PORT under WRAPPER; the wrapper's pid in
# $server
start() {
    local name=$1 port=$2; shift 2
    case $name in
        kv_server) exec "$@" target/release/examples/kv_server "127.0.0.1:$port" ;;
        redis-server) exec "$@" redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no ;;
    esac >/dev/null 2>&1 &
    server=$!
    for _ in $(seq 300); do redis-cli -p "$port" ping >/dev/null 2>&1 && return; sleep 0.1; done
    echo "$name did not start on port $port" >&2; exit 1
}
# load PORT C: the tests, n requests each
load() { for t in $tests; do redis-benchmark -p "$1" -q -t "$t" -n "$n" -c "$2" -P 1 >/dev/null; done; }
# stop: SIGINT to the server itself (strace's child; valgrind runs it in its own process)
# until it is gone (the first one may be missed under valgrind), then wait for the tool,
# which writes its counts as it exits
stop() {
    local target
    target=$(pgrep -P "$server" || echo "$server")
    for _ in $(seq 60); do
        kill -INT "$target" 2>/dev/null || break
        sleep 1
    done
    wait "$server" || true
}

requests=$((n * $(echo $tests | wc -w)))
printf '%-13s %5s %22s %18s %14s\n' server clients "instructions/request" "syscalls/request" "epoll waits"
port=6600
for c in 50 500; do
    for name in kv_server redis-server; do
        port=$((port + 1))
        start $name $port valgrind --tool=callgrind --callgrind-out-file="$out/cg.$port"
        load $port $c
        stop
        instr=$(awk '/^(summary|totals):/ {print $2; exit}' "$out/cg.$port")
        port=$((port + 1))
        start $name $port strace -f -c -o "$out/st.$port"
        load $port $c
        stop
        calls=$(awk '/^-+ /{last=1} END{} {if ($NF=="total") print $(NF-2)}' "$out/st.$port")
        waits=$(awk '$NF ~ /^epoll_(p)?wait$/ {s+=$4} END {print s+0}' "$out/st.$port")
        printf '%-13s %5d %22d %18.2f %14.3f\n' $name $c $((instr / requests)) \
            "$(echo "$calls / $requests" | bc -l)" "$(echo "$waits / $requests" | bc -l)"
    done
done
