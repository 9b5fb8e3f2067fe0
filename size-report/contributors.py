#!/usr/bin/env python3
"""Largest contributors to an unstripped sprig, from its symbol table:

    contributors.py LLVM_NM UNSTRIPPED STRIPPED [N]

Prints two Markdown tables: bytes per crate (first path segment of the demangled symbol; std's
internals, core and alloc are merged as `std`) and the N largest symbols. Symbol sizes cover
.text and .rodata symbols; what no symbol covers (headers, relocations, unnamed constants) is
the "(no symbol)" row: the stripped file's size minus the symbols (may include .bss-free padding).
"""
import collections
import os
import re
import subprocess
import sys

STD = {"core", "alloc", "std", "std_detect", "hashbrown", "rustc_demangle", "panic_abort", "addr2line",
       "gimli", "miniz_oxide", "object", "adler2", "memchr", "unwind"}


def crate_of(name):
    n = name
    # trait impls: `<a::B as c::D>::f` counts for the implementing type's crate
    m = re.match(r"<+&?(?:mut )?(?:dyn )?([A-Za-z_][A-Za-z0-9_]*)::", n)
    if m:
        c = m.group(1)
    else:
        m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)::", n)
        c = m.group(1) if m else "(C / asm: ring, musl libc, compiler-rt)"
    return "std" if c in STD else c


def main():
    nm, binary, stripped = sys.argv[1], sys.argv[2], sys.argv[3]
    top_n = int(sys.argv[4]) if len(sys.argv) > 4 else 15
    out = subprocess.run([nm, "--print-size", "--size-sort", "--demangle", "--defined-only", binary],
                         check=True, capture_output=True, text=True).stdout
    per_crate = collections.Counter()
    syms = []
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) < 4 or parts[2] not in "tTrRdD":
            continue
        size = int(parts[1], 16)
        name = re.sub(r"::h[0-9a-f]{16}$", "", parts[3])
        per_crate[crate_of(name)] += size
        syms.append((size, name))
    total = os.path.getsize(stripped)
    print("| Crate | Bytes (symbols) |\n|---|---:|")
    for crate, size in per_crate.most_common(12):
        print(f"| {crate} | {size:,} |")
    print(f"| (no symbol: headers, tables, padding) | {total - sum(per_crate.values()):,} |\n")
    print(f"| Symbol | Bytes |\n|---|---:|")
    for size, name in sorted(syms, reverse=True)[:top_n]:
        short = name if len(name) <= 90 else name[:87] + "..."
        short = short.replace("|", "\\|")
        print(f"| `{short}` | {size:,} |")


if __name__ == "__main__":
    main()
