#!/usr/bin/env python3
"""test_cli_errors.py - exit codes and messages of the CLI for bad input files:
GGUF files past spoke's limits exit 8 like any other malformed GGUF (they exited
1), and a spoke.yaml nested deeper than the cap is refused at once with exit 2
(40,000 levels used to take ~10 s inside libyaml and then load). python3 stdlib
only; drives the real binary ($SPOKE_BIN) on files in a temporary directory."""
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

SPOKE = os.environ.get("SPOKE_BIN") or os.path.join(os.getcwd(), "spoke")
failed = 0


def check(cond, what):
    global failed
    print(("ok     " if cond else "not ok ") + what)
    if not cond:
        failed += 1


def gguf_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def header(n_tensors, n_kv):
    return b"GGUF" + struct.pack("<IQQ", 3, n_tensors, n_kv)


def run(args, timeout=60):
    env = dict(os.environ, SPOKE_LOG="error", HF_HUB_OFFLINE="1")
    t0 = time.time()
    p = subprocess.run([SPOKE] + args, capture_output=True, text=True, timeout=timeout, env=env)
    return p, time.time() - t0


def main():
    if not os.path.exists(SPOKE):
        print("SKIP: spoke binary not found at %s" % SPOKE)
        return 77
    d = tempfile.mkdtemp(prefix="spoke-cli-")
    try:
        files = {
            # past a limit (were SP_ERR_LIMIT -> exit 1)
            "too_many_tensors": header(1 << 40, 0),
            "too_many_keys": header(0, 1 << 40),
            "key_too_long": header(0, 1) + struct.pack("<Q", 1 << 20) + b"k" * 64,
            "string_too_long": header(0, 1) + gguf_str("general.name") + struct.pack("<I", 8) +
            struct.pack("<Q", 1 << 40) + b"x" * 64,
            "array_too_long": header(0, 1) + gguf_str("a") + struct.pack("<II", 9, 0) +
            struct.pack("<Q", 1 << 40) + b"\0" * 64,
            # malformed (already exit 8): the reference the limits must match
            "truncated": header(0, 1) + gguf_str("general.name")[:6],
        }
        for name, data in files.items():
            path = os.path.join(d, name + ".gguf")
            with open(path, "wb") as f:
                f.write(data)
            for cmd in (["run", path, "hi"], ["bench", path]):
                p, _ = run(cmd)
                err = p.stderr.strip().splitlines()
                check(p.returncode == 8 and err and "error:" in err[-1],
                      "spoke %s %s exits 8 with one error line (got %d: %s)" %
                      (cmd[0], name, p.returncode, err[-1] if err else ""))
            if "too" in name:
                p, _ = run(["run", path, "hi"])
                check("limit" in p.stderr, "%s: the message names the limit (%s)" %
                      (name, p.stderr.strip()[-200:]))
        # a config nested 40,000 levels deep: refused at once, exit 2, the line named
        cfg = os.path.join(d, "deep.yaml")
        with open(cfg, "w") as f:
            f.write("models: []\nx: " + "[" * 40000 + "]" * 40000 + "\n")
        try:
            p, dt = run(["serve", "-c", cfg, "--port", "0"], timeout=60)
        except subprocess.TimeoutExpired:
            p, dt = subprocess.CompletedProcess([], -1, "", "(still running after 60 s)"), 60.0
        check(p.returncode == 2 and "nested deeper than 64 levels" in p.stderr and
              "deep.yaml:2" in p.stderr,
              "deep config refused with exit 2 naming the line (got %d: %s)" %
              (p.returncode, p.stderr.strip()[-200:]))
        print("# deep config refused in %.2f s" % dt)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print("%d failed" % failed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
