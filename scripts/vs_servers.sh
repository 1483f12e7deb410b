#!/usr/bin/env bash
# selectloop's two protocol servers against the production C servers they imitate, driven by
# the standard load tools, in the same run:
#
#     bash scripts/vs_servers.sh [redis] [http] [threads]     # default: all three
#
# - redis:   redis-benchmark against examples/kv_server (--threads 1) and redis-server (no
#            persistence, one I/O thread): -c 50 and 500, -P 1 and 16, tests PING_INLINE,
#            PING_MBULK, SET, GET, INCR, MSET.
# - http:    wrk against examples/http_server (--threads 1) and nginx (one worker, the same
#            14-byte body): -t1 and -t2, -c 100 and 1000.
# - threads: kv_server and http_server with --threads 2 against --threads 1.
#
# Pinning: for redis and http, each server runs on CPU 0 and the load tool on CPU 1 (taskset),
# so a server never competes with its client for a core (wrk -t2 gets two threads on CPU 1).
# For threads, a two-loop server needs both cores, so nothing is pinned there and the load tool
# shares the cores with whichever server is measured; both variants are measured the same way.
#
# Each row also gives the server's CPU time per request (µs, user + system, from /proc: the
# server process and its children, so nginx's worker counts): what a request costs the server,
# which a throughput bound by the one-threaded load tool does not show. `tool cpu` is the load
# tool's CPU time per request (GNU time): when it times the throughput's inverse, the tool's core
# was saturated and the row measures the tool. `sleeps` is how often per request the server went
# idle (its threads' voluntary context switches): each time, the client's next write must wake
# it, and on a VM that wake-up (an inter-processor interrupt) is paid by the client.
#
# Every row runs REPEATS times (default 3), alternating which server goes first; the table gives
# each server's median with the min–max over the runs, and the ratio of the two servers' figures
# within each run (median, min–max). On a shared machine only those same-run ratios mean much.
#
# Environment: REPEATS (3), REQUESTS per redis-benchmark test (200000), DURATION of a wrk run
# (10s). Installs redis-server, redis-tools, nginx-light and wrk with apt-get if missing; binds
# only to 127.0.0.1; every server it starts is stopped on exit; every run is bounded by timeout.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

repeats=${REPEATS:-3}
requests=${REQUESTS:-200000}
duration=${DURATION:-10s}
sections=("$@")
[ ${#sections[@]} -gt 0 ] || sections=(redis http threads)

need=()
for tool in redis-server:redis-server redis-benchmark:redis-tools nginx:nginx-light wrk:wrk \
    taskset:util-linux python3:python3 /usr/bin/time:time; do
    command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
builds=()
for section in "${sections[@]}"; do
    case $section in
    redis) builds+=(--example kv_server) ;;
    http) builds+=(--example http_server) ;;
    threads) builds+=(--example kv_server --example http_server) ;;
    esac
done
[ ${#builds[@]} = 0 ] || cargo build --release -q "${builds[@]}"
ulimit -n "$(ulimit -Hn)" # -c 1000 and -c 500 need a few thousand descriptors (tools and servers)

work=$(mktemp -d)
server=
stop_server() {
    if [ -n "$server" ]; then
        kill -INT "$server" 2>/dev/null || true
        timeout 10 tail --pid="$server" -f /dev/null || kill -KILL "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
        server=
    fi
}
trap 'stop_server; rm -rf "$work"' EXIT

# wait_port PORT: until something accepts on 127.0.0.1:PORT (at most 10 s).
wait_port() {
    local i
    for i in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "vs_servers.sh: nothing listening on port $1" >&2
    cat "$work/server.log" >&2
    exit 1
}

# start PORT CPUS COMMAND...: starts a server (pinned to CPUS, or not if CPUS is "-").
start() {
    local port=$1 cpus=$2
    shift 2
    if [ "$cpus" = - ]; then
        "$@" >"$work/server.log" 2>&1 &
    else
        taskset -c "$cpus" "$@" >"$work/server.log" 2>&1 &
    fi
    server=$!
    wait_port "$port"
}

redis_port=16390
kv_port=16381
nginx_port=18091
http_port=18081

start_redis() { start $redis_port "$1" redis-server --port $redis_port --bind 127.0.0.1 \
    --save '' --appendonly no --io-threads 1 --daemonize no; }
start_kv() { start $kv_port "$1" target/release/examples/kv_server "127.0.0.1:$kv_port" --threads "$2"; }
start_nginx() {
    mkdir -p "$work/nginx"
    cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
worker_rlimit_nofile 16384;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 100000000; # as http_server: never closes a busy keep-alive connection
    server {
        listen 127.0.0.1:$nginx_port;
        location = / { default_type text/plain; return 200 "Hello, World!\n"; }
    }
}
EOF
    start $nginx_port "$1" nginx -p "$work/nginx" -c "$work/nginx/nginx.conf"
}
start_http() { start $http_port "$1" target/release/examples/http_server "127.0.0.1:$http_port" --threads "$2"; }

results=$work/results # lines: SECTION|ROW|SERVER|RUN|VALUE
touch "$results"
record() { echo "$1|$2|$3|$4|$5" >>"$results"; }

# The running server's process and its children (nginx's worker).
server_pids() { echo "$server" $(pgrep -P "$server" || true); }
# The CPU time the running server (and its children: nginx's worker) has used, in clock ticks.
tick=$(getconf CLK_TCK)
cpu_ticks() {
    local pid total=0
    for pid in $(server_pids); do
        total=$((total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}
# How many times the running server's threads (and its children's) have gone to sleep: each
# time, the next byte a client sends must wake it, and the client's write pays for that.
sleeps() {
    local pid total=0
    for pid in $(server_pids); do
        total=$((total + $(cat /proc/"$pid"/task/*/status 2>/dev/null |
            awk '/^voluntary_ctxt_switches/ { n += $2 } END { print n + 0 }')))
    done
    echo "$total"
}
# record_cpu SECTION ROW SERVER RUN TICKS REQUESTS [TOOL-SECONDS SLEEPS]: the server's CPU time
# per request, in µs; with the last two, the load tool's CPU time per request too, and the
# server's sleeps per request.
record_cpu() {
    record "$1" "$2 cpu" "$3" "$4" "$(awk -v t="$5" -v n="$6" -v hz="$tick" \
        'BEGIN { printf "%.3f", t * 1e6 / hz / n }')"
    [ $# -gt 6 ] || return 0
    record "$1" "$2 tool cpu" "$3" "$4" \
        "$(awk -v t="$7" -v n="$6" 'BEGIN { printf "%.3f", t * 1e6 / n }')"
    record "$1" "$2 sleeps" "$3" "$4" "$(awk -v s="$8" -v n="$6" 'BEGIN { printf "%.4f", s / n }')"
}
# tool_seconds: the user + system CPU time of the last load-tool run (GNU time's output).
tool_seconds() { awk 'END { print $1 + $2 }' "$work/time"; }

# redis_bench SECTION SERVER RUN PORT CPUS C P TESTS: redis-benchmark, one run per test:
# requests/s, and the server's CPU time per request.
redis_bench() {
    local section=$1 name=$2 run=$3 port=$4 cpus=$5 c=$6 p=$7 tests=$8 tool=() test
    [ "$cpus" = - ] || tool=(taskset -c "$cpus")
    for test in ${tests//,/ }; do
        local before slept rps row
        before=$(cpu_ticks) slept=$(sleeps)
        /usr/bin/time -f "%U %S" -o "$work/time" timeout 300 "${tool[@]}" \
            redis-benchmark -h 127.0.0.1 -p "$port" -q --csv \
            -n "$requests" -c "$c" -P "$p" -t "$test" >"$work/rb.csv"
        rps=$(awk -F, 'NR == 2 { gsub(/"/, "", $2); print $2 }' "$work/rb.csv")
        row="${prefix:-}$test -c $c -P $p"
        record "$section" "$row" "$name" "$run" "$rps"
        record_cpu "$section" "$row" "$name" "$run" $(($(cpu_ticks) - before)) "$requests" \
            "$(tool_seconds)" $(($(sleeps) - slept))
    done
}

# wrk_bench SECTION SERVER RUN PORT CPUS T C: one wrk run: requests/s, latency p50 and p99,
# and the server's CPU time per request.
wrk_bench() {
    local section=$1 name=$2 run=$3 port=$4 cpus=$5 t=$6 c=$7 tool=() before slept
    [ "$cpus" = - ] || tool=(taskset -c "$cpus")
    before=$(cpu_ticks) slept=$(sleeps)
    /usr/bin/time -f "%U %S" -o "$work/time" timeout 120 "${tool[@]}" \
        wrk --latency -t "$t" -c "$c" -d "$duration" "http://127.0.0.1:$port/" >"$work/wrk.out"
    local ticks=$(($(cpu_ticks) - before)) slept=$(($(sleeps) - slept))
    local row="${prefix:-}-t$t -c $c" errors
    errors=$(sed -n 's/.*Socket errors: \(.*\)/\1/p; s/.*Non-2xx or 3xx responses: \(.*\)/non-2xx \1/p' "$work/wrk.out")
    [ -z "$errors" ] || echo "  $name $row run $run: $errors" >&2
    record "$section" "$row" "$name" "$run" "$(awk '/^Requests\/sec/ { print $2 }' "$work/wrk.out")"
    record "$section" "$row p50" "$name" "$run" "$(awk '$1 == "50%" { print $2 }' "$work/wrk.out")"
    record "$section" "$row p99" "$name" "$run" "$(awk '$1 == "99%" { print $2 }' "$work/wrk.out")"
    record_cpu "$section" "$row" "$name" "$run" "$ticks" \
        "$(awk '/requests in/ { print $1 }' "$work/wrk.out")" "$(tool_seconds)" "$slept"
}

# both RUN A B: the order of the two servers in run RUN (alternates).
order() { if [ $(($1 % 2)) = 1 ]; then echo "$2 $3"; else echo "$3 $2"; fi; }

redis_section() {
    echo "== redis: kv_server vs redis-server, $repeats runs" >&2
    local run c p name
    for run in $(seq "$repeats"); do
        for name in $(order "$run" kv_server redis-server); do
            if [ "$name" = kv_server ]; then start_kv 0 1; else start_redis 0; fi
            local port=$redis_port
            [ "$name" = kv_server ] && port=$kv_port
            for c in 50 500; do
                for p in 1 16; do
                    redis_bench redis "$name" "$run" "$port" 1 "$c" "$p" \
                        PING_INLINE,PING_MBULK,SET,GET,INCR,MSET
                done
            done
            stop_server
        done
    done
}

http_section() {
    echo "== http: http_server vs nginx, $repeats runs of $duration" >&2
    local run t c name
    for run in $(seq "$repeats"); do
        for name in $(order "$run" http_server nginx); do
            if [ "$name" = http_server ]; then start_http 0 1; else start_nginx 0; fi
            local port=$nginx_port
            [ "$name" = http_server ] && port=$http_port
            for t in 1 2; do
                for c in 100 1000; do
                    wrk_bench http "$name" "$run" "$port" 1 "$t" "$c"
                done
            done
            stop_server
        done
    done
}

threads_section() {
    echo "== threads: --threads 2 vs --threads 1, $repeats runs (nothing pinned)" >&2
    local run n
    for run in $(seq "$repeats"); do
        for n in $(order "$run" 2 1); do
            start_kv - "$n"
            prefix="kv_server " redis_bench threads "--threads $n" "$run" $kv_port - 500 16 GET,SET
            prefix="kv_server " redis_bench threads "--threads $n" "$run" $kv_port - 50 1 GET,SET
            stop_server
            start_http - "$n"
            prefix="http_server " wrk_bench threads "--threads $n" "$run" $http_port - 2 1000
            stop_server
        done
    done
}

for section in "${sections[@]}"; do
    case $section in
    redis) redis_section ;;
    http) http_section ;;
    threads) threads_section ;;
    *) echo "vs_servers.sh: unknown section $section (redis, http, threads)" >&2; exit 2 ;;
    esac
done

# The table: per section and row, each server's median (min–max) and the same-run ratio of the
# first server named (selectloop's) to the second.
python3 - "$results" <<'EOF'
import statistics, sys
from collections import OrderedDict
rows = OrderedDict()
for line in open(sys.argv[1]):
    section, row, server, run, value = line.rstrip("\n").split("|")
    rows.setdefault((section, row), OrderedDict()).setdefault(server, {})[int(run)] = value

def number(text):
    """A figure: requests/s, or a wrk latency (us, ms, s) in ms."""
    for unit, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    return float(text)

def spread(values, fmt):
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}–{fmt(max(values))})"

headers = {"redis": ("kv_server", "redis-server"), "http": ("http_server", "nginx"),
           "threads": None}
last = None
for (section, row), servers in rows.items():
    names = list(servers)
    if section == "threads":
        names.sort(key=lambda n: -int(n.split()[-1]))  # --threads 2 first
    if section != last:
        a, b = names[0], names[1] if len(names) > 1 else "-"
        print(f"\n{section}\n| row | {a} | {b} | ratio (same run) |\n|---|---|---|---|")
        last = section
    if row.endswith(("p50", "p99")):
        fmt = lambda v: f"{v:.2f} ms"
    elif row.endswith("cpu"):
        fmt = lambda v: f"{v:.2f} µs"
    elif row.endswith("sleeps"):
        fmt = lambda v: f"{v:.3f}"
    else:
        fmt = lambda v: f"{v:,.0f}"
    cells, per_run = [], []
    for name in names[:2]:
        runs = servers[name]
        cells.append(spread([number(v) for v in runs.values()], fmt))
    if len(names) > 1:
        a, b = servers[names[0]], servers[names[1]]
        per_run = [number(a[r]) / number(b[r]) for r in a if r in b and number(b[r]) > 0]
    ratio = spread(per_run, lambda v: f"{v:.2f}") if per_run else "-"
    print(f"| {row} | " + " | ".join(cells) + f" | {ratio} |")
EOF
