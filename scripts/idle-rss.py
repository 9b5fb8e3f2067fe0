#!/usr/bin/env python3
"""Helpers of scripts/idle-rss.sh.

  idle-rss.py breakdown PID BINARY LABEL   VmRSS and what it is made of (/proc/PID/smaps);
                                           IDLE_RSS_DETAIL=1 lists every resident mapping
  idle-rss.py madvise PID BINARY ADVICE    process_madvise(2) ADVICE (cold|pageout) over the
                                           binary's file mappings, as the kernel would do
                                           under memory pressure
  idle-rss.py faults PID                   "minor major" page faults so far (/proc/PID/stat)
"""
import ctypes
import os
import sys

KINDS = {"r-xp": "text", "r--p": "rodata", "rw-p": "data"}


def mappings(pid, binary):
    """(kind, perms, start, end, rss_kb) per mapping."""
    out, cur = [], None
    for line in open(f"/proc/{pid}/smaps"):
        f = line.split()
        if "-" in f[0] and len(f) >= 5 and not f[0].endswith(":"):
            perms, path = f[1], (f[5] if len(f) > 5 else "")
            lo, hi = (int(x, 16) for x in f[0].split("-"))
            if path == binary:
                kind = KINDS.get(perms, "binary " + perms)
            elif path.startswith("["):
                kind = path.strip("[]")
            else:
                kind = "anon" if not path else "other"
            cur = [kind, perms, lo, hi, 0]
            out.append(cur)
        elif f[0] == "Rss:":
            cur[4] = int(f[1])
    return out


def breakdown(pid, binary, label):
    parts = {}
    for kind, perms, lo, hi, rss in mappings(pid, binary):
        parts[kind] = parts.get(kind, 0) + rss
        if os.environ.get("IDLE_RSS_DETAIL") == "1" and rss:
            print(f"  {kind:8} {perms} {(hi - lo) // 1024:6} kB mapped, {rss:6} kB resident")
    status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status"))
    rss = int(status["VmRSS"].split()[0])
    top = sorted(((k, v) for k, v in parts.items() if v), key=lambda kv: -kv[1])
    print(f"{label}: VmRSS {rss} kB = " + ", ".join(f"{k} {v}" for k, v in top))


def madvise(pid, binary, advice):
    code = {"cold": 20, "pageout": 21}[advice]  # MADV_COLD, MADV_PAGEOUT
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = libc.syscall(434, int(pid), 0)  # pidfd_open
    if pidfd < 0:
        sys.exit(f"pidfd_open: errno {ctypes.get_errno()}")

    class Iovec(ctypes.Structure):
        _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]

    for kind, _, lo, hi, _ in mappings(pid, binary):
        if kind in KINDS.values():
            iov = Iovec(lo, hi - lo)
            if libc.syscall(440, pidfd, ctypes.byref(iov), 1, code, 0) < 0:  # process_madvise
                sys.exit(f"process_madvise: errno {ctypes.get_errno()}")
    os.close(pidfd)


def faults(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    print(f[7], f[9])  # minflt, majflt (fields 10 and 12)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"breakdown": breakdown, "madvise": madvise, "faults": faults}[cmd](*args)
