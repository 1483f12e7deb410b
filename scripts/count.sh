#!/usr/bin/env bash
# Deterministic costs per message: user-space instructions (valgrind's callgrind) and system
# calls (strace), which do not depend on what else the machine is doing, unlike timings.
#
#     bash scripts/count.sh [EXAMPLE [ARGS...]]   # an example server; default echo_server
#     bash scripts/count.sh --loops                # one echo server, five loops (benches/echo_loops.rs)
#     bash scripts/count.sh --pingpong             # the loops of benches/pingpong.rs
#
# An example server is started with ARGS and the address 127.0.0.1:0, and driven by
# `echo_client --connections C --count M --size 64` (64-byte lines, one round trip at a time
# per connection), at C = 1 and C = 50. It runs twice, with M and with 2M round trips per
# connection; the figure is the difference divided by M × C, so start-up, accepts and shutdown
# cancel out. The server is stopped with SIGINT, so it must stop cleanly on it (every example
# server does). With --loops, the server is benches/echo_loops.rs, the same user code (the
# README's first program: read into a zeroed 1 KiB buffer, write it back) on selectloop's
# select + dispatch loop, its run_once loop, EpollSelector, a bare `polling` loop and bare epoll;
# it exits by itself once its C clients have left. With --pingpong, each variant of the pingpong benchmark (run_once, the
# README's select + dispatch loop, a bare `polling` loop, bare epoll: the same echo code in
# each) runs alone under callgrind at N = 1 and N = 64, with M and 2M events.
#
# Environment: COUNT_MESSAGES (M, default 2000), COUNT_CONNECTIONS (default "1 50"), COUNT_LOOPS
# (with --loops: which loops, default all five),
# COUNT_STRACE=0 to skip the system calls, COUNT_KEEP=DIR to keep each server's callgrind
# output as DIR/NAME.C.M.out (for scripts/per_event.py: where the instructions go, by function
# or by machine instruction). Needs valgrind and strace (apt-get install -y valgrind strace);
# Linux only.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

messages=${COUNT_MESSAGES:-2000}
[ -z "${COUNT_KEEP:-}" ] || mkdir -p "$COUNT_KEEP"
connections=${COUNT_CONNECTIONS:-1 50}
for tool in valgrind strace; do
    command -v "$tool" >/dev/null || { echo "count.sh: $tool is not installed" >&2; exit 1; }
done
work=$(mktemp -d)
launcher=
trap '[ -z "$launcher" ] || kill "$launcher" 2>/dev/null; rm -rf "$work"' EXIT

# The total instruction count of a callgrind output file.
instructions() { sed -n 's/^\(summary\|totals\): *\([0-9]*\).*/\2/p' "$1" | head -n 1; }
# The total number of system calls in an `strace -c` summary.
syscalls() { awk '$NF == "total" { print $4 }' "$1"; }

# serve C M TOOL-PREFIX... -- BINARY ARGS...: starts the server under the tool, waits for its
# address line, runs the client (C connections, M round trips each), then stops the server
# with SIGINT (STOP=int, the default) or waits for it to exit by itself (STOP=exit).
serve() {
    local prefix=() c=$1 m=$2
    shift 2
    while [ "$1" != -- ]; do prefix+=("$1"); shift; done
    shift
    local bin=$1
    shift
    "${prefix[@]}" "$bin" "$@" 2>"$work/stderr" &
    launcher=$!
    local addr="" i
    for i in $(seq 600); do
        # The port the server bound (not valgrind's echo of the command line, port 0).
        addr=$(grep -o '127\.0\.0\.1:[1-9][0-9]*' "$work/stderr" | head -n 1 || true)
        [ -n "$addr" ] && break
        sleep 0.1 # the server is starting (valgrind takes a few seconds)
    done
    [ -n "$addr" ] || { cat "$work/stderr" >&2; echo "count.sh: the server printed no address" >&2; exit 1; }
    target/release/examples/echo_client "$addr" --connections "$c" --count "$m" --size 64 >/dev/null
    if [ "${STOP:-int}" = int ]; then
        # Under strace the server is the tracer's child; under valgrind, the process itself.
        local server
        server=$(pgrep -P "$launcher" -f "$bin" || echo "$launcher")
        kill -INT "$server"
    fi
    wait "$launcher" || { cat "$work/stderr" >&2; echo "count.sh: $bin failed" >&2; exit 1; }
    launcher=
}

# per TOTALS-OF-M TOTALS-OF-2M N: the difference per message, with DIGITS decimals.
per() { awk -v a="$1" -v b="$2" -v n="$3" -v d="$4" 'BEGIN { printf "%.*f", d, (b - a) / n }'; }

# measure NAME C BINARY ARGS...: one table row: instructions and system calls per message.
measure() {
    local name=$1 c=$2
    shift 2
    local ir=() sc=() m
    for m in "$messages" $((2 * messages)); do
        serve "$c" "$m" valgrind --tool=callgrind --dump-instr=yes --callgrind-out-file="$work/cg" -- "$@"
        ir+=("$(instructions "$work/cg")")
        [ -z "${COUNT_KEEP:-}" ] || cp "$work/cg" "$COUNT_KEEP/$name.$c.$m.out"
        if [ "${COUNT_STRACE:-1}" != 0 ]; then
            serve "$c" "$m" strace -f -c -o "$work/st" -- "$@"
            sc+=("$(syscalls "$work/st")")
        fi
    done
    local n=$((messages * c)) per_sc=-
    [ ${#sc[@]} != 2 ] || per_sc=$(per "${sc[0]}" "${sc[1]}" "$n" 2)
    printf '%-24s %12d %16s %16s\n' "$name" "$c" "$(per "${ir[0]}" "${ir[1]}" "$n" 0)" "$per_sc"
}

count_example() {
    printf 'per message (a 64-byte round trip); M = %d and 2M round trips per connection\n' "$messages"
    printf '%-24s %12s %16s %16s\n' server connections instructions syscalls
    for c in $connections; do
        measure "$*" "$c" target/release/examples/"$1" "${@:2}" 127.0.0.1:0
    done
}

count_loops() {
    local bench
    bench=$(cargo bench --bench echo_loops --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -n 1)
    [ -x "$bench" ] || { echo "count.sh: no echo_loops benchmark binary" >&2; exit 1; }
    printf 'benches/echo_loops.rs, per message (a 64-byte round trip); M = %d and 2M per connection\n' "$messages"
    printf '%-24s %12s %16s %16s\n' loop connections instructions syscalls
    local lp c
    for c in $connections; do
        for lp in ${COUNT_LOOPS:-select run_once epoll-select bare-polling bare-epoll}; do
            STOP=exit measure "$lp" "$c" "$bench" "$lp" 127.0.0.1:0 --clients "$c"
        done
    done
}

count_pingpong() {
    local bench
    bench=$(cargo bench --bench pingpong --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -n 1)
    [ -x "$bench" ] || { echo "count.sh: no pingpong benchmark binary" >&2; exit 1; }
    printf 'benches/pingpong.rs under callgrind: instructions per event, M = %d and 2M events\n' "$messages"
    printf '%18s %10s %10s\n' variant 'N = 1' 'N = 64'
    local variant n
    for variant in run_once select+dispatch 'bare polling' 'bare epoll'; do
        local row=()
        for n in 1 64; do
            local ir=() ev=() m
            for m in "$messages" $((2 * messages)); do
                PINGPONG_VARIANT=$variant PINGPONG_SIZES=$n PINGPONG_EVENTS=$m \
                    valgrind --tool=callgrind --callgrind-out-file="$work/cg" "$bench" \
                    >"$work/out" 2>/dev/null
                ir+=("$(instructions "$work/cg")")
                ev+=("$(sed -n 's/.*: \([0-9]*\) events/\1/p' "$work/out")")
            done
            row+=("$(awk -v a="${ir[0]}" -v b="${ir[1]}" -v x="${ev[0]}" -v y="${ev[1]}" \
                'BEGIN { printf "%.0f", (b - a) / (y - x) }')")
        done
        printf '%18s %10s %10s\n' "$variant" "${row[0]}" "${row[1]}"
    done
}

if [ "${1:-}" = --pingpong ]; then
    count_pingpong
elif [ "${1:-}" = --loops ]; then
    cargo build --release --examples -q # the client
    count_loops
else
    cargo build --release --examples -q
    [ $# -gt 0 ] || set -- echo_server
    count_example "$@"
fi
