#!/usr/bin/env bash
# The Windows leg: build the test suite for x86_64-pc-windows-gnu and run it under Wine.
#
#     bash ci/windows/test.sh
#
# On Windows, polling (and so selectloop) uses IOCP/AFD instead of epoll: that is the backend
# this runs. Needs: the rustup target, the mingw-w64 linker and Wine, all installed here when
# missing (apt-get, as root: Debian 12's Wine 8.0). This script, not .cargo/config.toml, names
# the linker and the runner (`wine`), in environment variables for its own cargo commands: a
# [target.x86_64-pc-windows-gnu] section in the config would also apply to a build *on* a
# windows-gnu host, whose `cargo test` would then try to run every test under Wine. To run one
# test by hand after this script has run once (the shim is installed, the prefix exists):
#
#     CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc \
#     CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine WINEDEBUG=-all \
#         cargo test --target x86_64-pc-windows-gnu --test services
#
# Exit status: 0 when every test passed; non-zero when a build or a test failed. If the target
# or Wine cannot be installed at all, it prints a loud WARNING and exits 0: the leg is skipped
# visibly (not counted as passed, and not blocking CI on a package mirror).
#
# The doc tests run too (cargo 1.89 and later runs them for a cross target, with the runner).
#
# How long each part takes, measured on the project's 2-core machine while other builds ran
# (load average 3 to 6); each step's line in the log shows the seconds since the start:
#   1. tools: nothing when installed. When missing (a fresh machine), apt-get update and the
#      download took about 8 s and unpacking and configuring the 64 packages 25 s (from
#      /var/log/apt/history.log).
#   2. the shim: under a second (compiled once, then only when processprng.c changes). The
#      Wine prefix: 13 s, on the first run for that prefix only.
#   3. building the tests for the target: 55 to 80 s cold (every dependency too); about 40 s
#      after a change to the library. Running them: about 145 s on a quiet machine (measured
#      with 668 tests and 47 doc tests; the doc tests are compiled and linked anew on every
#      run, about 3 s each, two at a time, so they take half of it); the `Connection` tests,
#      tests/conn_*.rs, move tens of MiB through Wine's sockets; and Wine takes about 0.7 s to
#      start each executable.
# In all: about 3 min (186 s measured) after a change to the library; some 35 s more on a
# machine without the tools, and about 15 s more for a new Wine prefix.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TERM_COLOR=never

target=x86_64-pc-windows-gnu
target_dir=${CARGO_TARGET_DIR:-target}
start=$SECONDS

step() { printf '\n--- windows: %s (%ds)\n' "$*" $((SECONDS - start)); }

skip() {
    printf '\n!!! WARNING: %s: Windows tests NOT run !!!\n\n' "$*"
    exit 0
}

# --- 1. Tools, installed only when missing (each check is a cheap `command -v`/rustup query).
step "tools"
if ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target" || skip "could not install the $target Rust target"
fi

if ! command -v x86_64-w64-mingw32-gcc >/dev/null || ! command -v wine >/dev/null; then
    sudo=
    [ "$(id -u)" = 0 ] || sudo="sudo -n"
    echo "installing gcc-mingw-w64-x86-64 and wine (apt-get)"
    # Quiet: the package lists are long; on failure apt's own error is still printed.
    if ! { $sudo apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
            gcc-mingw-w64-x86-64 wine >/dev/null; }; then
        skip "could not install gcc-mingw-w64-x86-64 and wine with apt-get"
    fi
    command -v x86_64-w64-mingw32-gcc >/dev/null && command -v wine >/dev/null ||
        skip "gcc-mingw-w64-x86-64 or wine installed but not on PATH"
fi
# The linker (from Debian's gcc-mingw-w64-x86-64) and the runner: cargo starts each test
# executable, and each doc test, as `wine EXE`. Debian's `wine` picks its 32- or 64-bit loader
# and runs 64-bit executables through wine64. Values already set in the environment are kept.
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=${CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER:-x86_64-w64-mingw32-gcc}
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=${CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER:-wine}
# WINEDEBUG=-all: no Wine diagnostics (fixme:..., and the "wine32 is missing" hint) in the log.
export WINEDEBUG=-all

# --- 2. The ProcessPrng shim (see processprng.c for why Rust programs need it under Wine 8).
step "bcryptprimitives.dll shim"
shim_dir=$target_dir/$target/shim
mkdir -p "$shim_dir"
shim=$shim_dir/bcryptprimitives.dll
if [ ! "$shim" -nt ci/windows/processprng.c ]; then
    x86_64-w64-mingw32-gcc -shared -O2 -Wall -Werror -o "$shim" ci/windows/processprng.c -ladvapi32
fi

# The Wine prefix (~/.wine unless WINEPREFIX says otherwise) is created by the first program
# Wine starts; doing it here keeps that one-off cost (13 s) out of the first test.
# Mono and Gecko are not needed (no .NET, no HTML). Debian's wine64 has no 32-bit side, so a
# "failed to open ...syswow64\rundll32.exe: c0000135" line here is expected and harmless.
prefix=${WINEPREFIX:-$HOME/.wine}
if [ ! -f "$prefix/system.reg" ]; then
    step "creating the Wine prefix $prefix"
    WINEDLLOVERRIDES="mscoree,mshtml=" wine wineboot --init
    wineserver -w # wineboot returns before the prefix is fully written
fi

# The shim is built above, under the target directory ($shim), and installed here into the
# prefix's C:\windows\system32 (drive_c/windows/system32: the 64-bit system directory of a
# 64-bit prefix), where Windows keeps the real one. Windows looks for a DLL in the
# executable's own directory, then in system32, then (among others) in the current directory
# and on PATH. Next to the executables would do for the test binaries
# (target/x86_64-pc-windows-gnu/debug/deps), but rustdoc builds each doc test in a temporary
# directory of its own (/tmp/rustdoctestXXXXXX/rust_out.exe) and cargo runs everything from
# the package root, which should not hold build products: system32 is where every executable
# Wine starts in this prefix finds it. Without it, each one fails to start with status 53
# (c0000135, "DLL not found"). Checked with Wine 8.0 (Debian 8.0~repack-4).
install -m 644 "$shim" "$prefix/drive_c/windows/system32/bcryptprimitives.dll"

# --- 3. Build the tests (lib unit tests, integration tests, examples), then run them, and the
# doc tests, under Wine: the runner set above starts each test executable with `wine`.
# Building first keeps compile errors apart from test failures in the log.
# --no-fail-fast: every test executable runs, and all failures are reported at once.
step "cargo test --target $target --no-run"
cargo test --target "$target" --no-run

step "cargo test --target $target (under Wine)"
# One wineserver for the whole run, kept for 60 s after its last client: by default it exits
# 3 s after the last Wine process, and a test executable started just then lost its connection
# to it ("wine client error:0: recvmsg: Connection reset by peer"), failing a run whose tests
# all passed.
wineserver -p60
cargo test --target "$target" --no-fail-fast

step "done"
