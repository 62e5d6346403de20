#!/usr/bin/env bash
# Soak: N JSON-lines events (default 10,000,000 over 100 keys) through
# `weir run AGENT`, sampling the process's RSS and open descriptors every
# INTERVAL seconds (default 10); with STATE=1 under --state (the journal).
#   benches/soak.sh WEIR_BIN AGENT.toml [N]
# Input lines are {"key": "kI", "payload": "<10 words>"}, as the Flink Agents
# side-by-side sends; the agent's outputs go to /dev/null.
set -euo pipefail
weir=$1; agent=$2; n=${3:-10000000}; interval=${INTERVAL:-10}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work/in.jsonl" "$n" <<'PY'
import json, random, sys
path, n = sys.argv[1], int(sys.argv[2])
random.seed(1)
words = "the quick brown fox jumps over a lazy dog while cats sleep near warm fires".split()
with open(path, "w") as f:
    for i in range(n):
        f.write(json.dumps({"key": f"k{i % 100}", "payload": " ".join(random.choice(words) for _ in range(10))}) + "\n")
PY
state=()
[ "${STATE:-0}" = 1 ] && state=(--state "$work/state")
"$weir" plan "$agent" >/dev/null
start=$(date +%s)
"$weir" run "$agent" --input "$work/in.jsonl" --output /dev/null "${state[@]}" 2>"$work/summary" &
pid=$!
echo "seconds  rss_kib  fds  events_done(approx, from input offset)"
while kill -0 $pid 2>/dev/null; do
  sleep "$interval"
  rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status 2>/dev/null) || break
  fds=$(ls /proc/$pid/fd 2>/dev/null | wc -l)
  pos=$(awk '/^pos/ {print $2}' /proc/$pid/fdinfo/$(ls -l /proc/$pid/fd 2>/dev/null | awk '/in.jsonl/ {print $9; exit}') 2>/dev/null || echo 0)
  size=$(stat -c %s "$work/in.jsonl")
  echo "$(( $(date +%s) - start ))  $rss  $fds  $(( n * pos / size ))"
done
wait $pid
echo "exit $? after $(( $(date +%s) - start )) s"
grep -v "^  " "$work/summary" | head -3
[ "${STATE:-0}" = 1 ] && du -sh "$work/state" || true
