#!/usr/bin/env python3
"""One event at a time through `weir run` (stdin to stdout): p50/p99 latency.

    python3 benches/latency.py WEIR_BIN AGENT.toml [N] [--state]

Sends one JSON-lines event, waits for its output line, then sends the next
(N events over 10 keys, default 2,000; the first 100 are warm-up and not
counted). With --state, weir runs under a fresh state directory (the
journal), so each output waits for its group commit. The time includes this
driver's pipe I/O, as any client's would.
"""
import json
import subprocess
import sys
import tempfile
import time

args = [a for a in sys.argv[1:] if a != "--state"]
state = "--state" in sys.argv
weir, agent = args[0], args[1]
n = int(args[2]) if len(args) > 2 else 2000
command = [weir, "run", agent, "--input", "-"]
with tempfile.TemporaryDirectory() as state_dir:
    if state:
        command += ["--state", state_dir]
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, bufsize=0)
    latencies = []
    for i in range(n):
        line = json.dumps({"key": f"k{i % 10}", "payload": "the quick brown fox jumps"}) + "\n"
        sent = time.perf_counter()
        proc.stdin.write(line.encode())
        if not proc.stdout.readline():
            sys.exit(f"weir ended after {i} events")
        latencies.append(time.perf_counter() - sent)
    proc.stdin.close()
    proc.wait()
latencies = sorted(latencies[100:])
pick = lambda q: latencies[min(len(latencies) - 1, int(len(latencies) * q))] * 1e3
print(f"journal {'on' if state else 'off'}: {len(latencies)} events, "
      f"p50 {pick(0.5):.2f} ms, p99 {pick(0.99):.2f} ms, max {latencies[-1] * 1e3:.2f} ms")
