#!/usr/bin/env python3
"""Where the instructions of one message go: the difference of two callgrind runs, per message.

Usage:
    python3 scripts/per_event.py SHORT.out LONG.out N [--top K]
    python3 scripts/per_event.py SHORT.out LONG.out N --asm BINARY ADDRESS [END]

SHORT.out and LONG.out are callgrind outputs of the same server serving M and 2M messages per
connection, as `COUNT_KEEP=DIR bash scripts/count.sh --loops` keeps them (DIR/LOOP.C.M.out);
N is the number of extra messages, M x C. Start-up and shutdown cancel out, as in count.sh.

Without --asm: instructions per message by function (self cost, inlined code counted where it
was inlined), largest first. With --asm: instructions per message by machine instruction, from
ADDRESS (hex, as `nm BINARY` prints it) to END (default: ADDRESS + 0x800), disassembled with
objdump; only those run at least once per 20 messages are printed. callgrind names source lines
only if the binary has line tables: build it with CARGO_PROFILE_BENCH_DEBUG=line-tables-only
(which changes no instruction).

Needs valgrind's callgrind_annotate and binutils' objdump; Python's standard library only.
"""

import argparse
import collections
import re
import subprocess
import sys


def by_function(path):
    """Self cost per function, from callgrind_annotate."""
    out = subprocess.run(
        ["callgrind_annotate", "--inclusive=no", "--threshold=100", "--show-percs=no", path],
        capture_output=True, text=True, check=True,
    ).stdout
    costs = collections.Counter()
    for line in out.splitlines():
        if line.startswith("-- Auto-annotated"):
            break
        m = re.match(r"\s*([\d,]+)\s+(\S.*)$", line)
        if m and ":" in m.group(2) and "PROGRAM TOTALS" not in m.group(2):
            name = re.sub(r"\s*\[.*\]$", "", m.group(2).strip())
            costs[name] += int(m.group(1).replace(",", ""))
    return costs


def by_address(path):
    """Self cost per instruction address (the file must come from --dump-instr=yes)."""
    costs = collections.Counter()
    addr = 0
    after_call = False
    with open(path) as f:
        for raw in f:
            if raw.startswith("calls="):
                after_call = True  # the next cost line is the call's inclusive cost
                continue
            if not raw or raw[0] not in "+-*0123456789":
                continue
            parts = raw.split()
            tok = parts[0]
            if tok == "*":
                pass
            elif tok[0] in "+-":
                addr += int(tok, 0) if tok[0] == "-" else int(tok[1:], 0)
            else:
                addr = int(tok, 0)
            cost = int(parts[2]) if len(parts) > 2 else 0
            if after_call:
                after_call = False
                continue
            costs[addr] += cost
    return costs


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("short")
    p.add_argument("long")
    p.add_argument("n", type=int, help="extra messages in the long run")
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--asm", nargs="+", metavar=("BINARY", "ADDRESS"))
    a = p.parse_args()
    if a.n <= 0:
        sys.exit("per_event.py: N must be positive")
    if not a.asm:
        short, long = by_function(a.short), by_function(a.long)
        diff = {k: (long[k] - short[k]) / a.n for k in set(short) | set(long)}
        print(f"{sum(diff.values()):8.1f}  total, instructions per message")
        for name, cost in sorted(diff.items(), key=lambda kv: -kv[1])[: a.top]:
            if cost >= 0.5:
                print(f"{cost:8.1f}  {name[:150]}")
        return
    if len(a.asm) not in (2, 3):
        sys.exit("per_event.py: --asm takes BINARY ADDRESS [END]")
    binary, lo = a.asm[0], int(a.asm[1], 16)
    hi = int(a.asm[2], 16) if len(a.asm) == 3 else lo + 0x800
    short, long = by_address(a.short), by_address(a.long)
    listing = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", "-C",
         f"--start-address={lo:#x}", f"--stop-address={hi:#x}", binary],
        capture_output=True, text=True, check=True,
    ).stdout
    total = 0.0
    for line in listing.splitlines():
        m = re.match(r"\s*([0-9a-f]+):\s*(.*)", line)
        if not m:
            continue
        addr = int(m.group(1), 16)
        cost = (long[addr] - short[addr]) / a.n
        if cost >= 0.05:
            total += cost
            print(f"{cost:6.2f}  {addr:x}  {m.group(2)}")
    print(f"{total:6.2f}  in all, instructions per message")


if __name__ == "__main__":
    main()
