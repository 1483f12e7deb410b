#!/usr/bin/env bash
# redis-py's own test suite, run against examples/kv_server for the commands kv_server has:
#
#     bash scripts/redis_py_suite.sh                  # builds and starts kv_server on a free port
#     bash scripts/redis_py_suite.sh --redis-server   # the same tests against a redis-server
#     bash scripts/redis_py_suite.sh --port N         # the server already on 127.0.0.1:N
#
# Why: kv_server's own tests (tests/kv_server.rs) check it byte for byte against what we
# expect; this checks it against what a widely used client library's maintainers expect, with
# tests we did not write. The figure it prints goes in docs/servers.md beside this command.
#
# What it does:
# - downloads redis-py's source distribution, pinned (redis==8.2.0, so the figures are
#   reproducible), into target/redis-py/ and unpacks it there: the sdist carries tests/;
# - makes a venv in target/redis-py/venv with that redis plus pytest and pytest-timeout (the
#   sdist's pyproject sets a 30 s per-test timeout) and packaging (tests/conftest.py imports
#   it), pinned too. Both are reused on later runs, so after the first run it works offline;
# - starts the server (kv_server from `cargo build --release --example kv_server`, or
#   redis-server with no persistence) on the first free port from 6392, unless --port names
#   one already running;
# - runs the tests listed in scripts/redis_py/tests.txt (chosen by command, not by outcome:
#   that file says how) with pytest from the unpacked sdist, against redis://127.0.0.1:PORT/0
#   (db 0 is conftest's own default), and the client's own defaults otherwise (RESP3, asked for
#   with HELLO 3; redis-py falls back to RESP2, with a warning, from a server answering NOPROTO);
# - stops the server it started, and prints pytest's short summary (one line per failure)
#   and then one line:
#       redis-py 8.2.0: N passed, M failed, K skipped (selection: scripts/redis_py/tests.txt, against kv_server)
#   pytest's full output is kept in target/redis-py/last-run.log.
#
# Before any test, conftest.py's session start sends INFO and reads redis_version, arch_bits
# and cluster_enabled from it (a missing one stops the whole run: the script then says so),
# and DPING, whose error reply means "not Redis Enterprise". Every client connection then
# sends HELLO 3, CLIENT SETINFO LIB-NAME and LIB-VER (errors ignored), and every test's
# fixture ends with FLUSHDB.
#
# Exit status: 0 all passed, 1 some failed, 2 the suite could not run.
set -euo pipefail
cd "$(dirname "$0")/.."

REDIS_PY_VERSION=8.2.0
TEST_DEPS=(pytest==9.2.0 pytest-timeout==2.4.0 packaging==26.4)
SELECTION=scripts/redis_py/tests.txt
WORK=target/redis-py
SDIST=$WORK/redis-$REDIS_PY_VERSION.tar.gz
SRC=$WORK/redis-$REDIS_PY_VERSION
VENV=$WORK/venv
LOG=$WORK/last-run.log

usage() {
    echo "usage: bash scripts/redis_py_suite.sh [--redis-server | --port N] [--help]"
}
help() {
    usage
    cat <<'EOF'

Runs redis-py's own tests (pinned: redis-py 8.2.0, from its sdist) for the commands kv_server
supports -- the list is scripts/redis_py/tests.txt -- and prints passed/failed/skipped.

  (no option)       build examples/kv_server (release), start it on the first free port from
                    6392, run the tests against it, stop it
  --redis-server    the same against a redis-server started the same way (no persistence),
                    for comparison
  --port N          start nothing: run against the server already listening on 127.0.0.1:N
  --help            this text

Needs python3 (3.11+) and, on the first run only, PyPI (the sdist, pytest, pytest-timeout,
packaging; all cached in target/redis-py/). pytest's full output: target/redis-py/last-run.log.
EOF
}

target=kv_server
port=
while [ $# -gt 0 ]; do
    case "$1" in
        --help|-h) help; exit 0 ;;
        --redis-server) target=redis-server ;;
        --port)
            [ $# -ge 2 ] || { usage >&2; exit 2; }
            port=$2
            shift
            ;;
        --port=*) port=${1#--port=} ;;
        *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
if [ -n "$port" ]; then
    case "$port" in
        ''|*[!0-9]*) echo "--port wants a number, got: $port" >&2; usage >&2; exit 2 ;;
    esac
    [ "$target" = kv_server ] || { echo "--port and --redis-server exclude each other" >&2; usage >&2; exit 2; }
    target="the server on 127.0.0.1:$port"
fi

start=$(date +%s)
mkdir -p "$WORK"

# --- redis-py's sdist and a venv to run its tests (reused when present)
if [ ! -f "$SDIST" ]; then
    echo "downloading redis==$REDIS_PY_VERSION's sdist into $WORK/"
    python3 -m pip download --quiet --no-binary :all: --no-deps "redis==$REDIS_PY_VERSION" -d "$WORK"
fi
if [ ! -f "$SRC/tests/conftest.py" ]; then
    tar -xzf "$SDIST" -C "$WORK"
fi
stamp="redis==$REDIS_PY_VERSION ${TEST_DEPS[*]}"
if [ "$(cat "$VENV/.redis_py_suite" 2>/dev/null)" != "$stamp" ]; then
    echo "making $VENV ($stamp)"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$SDIST" "${TEST_DEPS[@]}"
    echo "$stamp" > "$VENV/.redis_py_suite"
fi

# --- the server
free_port() {
    python3 - <<'EOF'
import socket
for p in range(6392, 6492):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    break
EOF
}
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

server_pid=
stop_server() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=
    fi
}
trap stop_server EXIT

if [ -z "$port" ]; then
    port=$(free_port)
    [ -n "$port" ] || { echo "no free port in 6392-6491" >&2; exit 2; }
    if [ "$target" = kv_server ]; then
        cargo build --quiet --release --example kv_server ||
            { echo "building kv_server failed" >&2; exit 2; }
        target/release/examples/kv_server "127.0.0.1:$port" > "$WORK/server.log" 2>&1 &
    else
        command -v redis-server > /dev/null || { echo "redis-server is not installed" >&2; exit 2; }
        redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
            --daemonize no > "$WORK/server.log" 2>&1 &
    fi
    server_pid=$!
    for _ in $(seq 100); do
        listening "$port" && break
        kill -0 "$server_pid" 2>/dev/null || { echo "$target exited:" >&2; cat "$WORK/server.log" >&2; exit 2; }
        sleep 0.05
    done
fi
listening "$port" || { echo "nothing listens on 127.0.0.1:$port" >&2; exit 2; }

# --- the tests
mapfile -t tests < <(sed -e 's/#.*//' -e 's/[[:space:]]*$//' "$SELECTION" | grep -v '^$')
echo "redis-py $REDIS_PY_VERSION: ${#tests[@]} tests from $SELECTION against $target, redis://127.0.0.1:$port/0"
url="redis://127.0.0.1:$port/0"
# -p no:warnings: the sdist's pyproject names pytest options of plugins not installed here
# (pytest-asyncio's, a coverage filter), which only makes noise. --redis-mod-url: conftest
# asks that URL's INFO for modules; point it at the same server rather than localhost:6479.
set +e
(cd "$SRC" && COLUMNS=${COLUMNS:-200} "../venv/bin/python" -m pytest -p no:cacheprovider -p no:warnings \
    -q -rfE --tb=short --show-capture=no --redis-url="$url" --redis-mod-url="$url" \
    "${tests[@]}") > "$LOG" 2>&1
set -e
stop_server

# pytest's last line, e.g. "15 failed, 67 passed in 4.05s" ("=== ... ===" without -q's trim)
last=$(grep -E '^[= ]*[0-9]+ (passed|failed|skipped|error|errors|deselected|xfailed|xpassed)\b' "$LOG" | tail -1 || true)
count() { echo "$last" | grep -oE "[0-9]+ $1" | grep -oE '^[0-9]+' || echo 0; }
if [ -z "$last" ]; then
    echo "redis-py $REDIS_PY_VERSION: the suite did not run against $target; pytest said:" >&2
    grep -E '^(INTERNALERROR> [A-Za-z.]*(Error|Exception)|ERROR|E  )' "$LOG" | tail -5 >&2
    if grep -q 'in pytest_sessionstart' "$LOG"; then
        echo "(tests/conftest.py's session start failed: it needs INFO's redis_version," \
            "arch_bits and cluster_enabled fields, and an error reply to DPING)" >&2
    fi
    echo "(full output: $LOG)" >&2
    exit 2
fi
passed=$(count passed); failed=$(count failed); skipped=$(count skipped); errors=$(count 'errors?')
sed -n '/short test summary info/,$p' "$LOG" | grep -E '^(FAILED|ERROR) ' || true
extra=
[ "$errors" -eq 0 ] || extra=", $errors errors"
echo "wall time: $(($(date +%s) - start)) s; pytest's full output: $LOG"
echo "redis-py $REDIS_PY_VERSION: $passed passed, $failed failed, $skipped skipped$extra" \
    "(selection: $SELECTION, against $target)"
[ "$failed" -eq 0 ] && [ "$errors" -eq 0 ]
