#!/usr/bin/env bash
# weir's half of ../shared/bench/flink-agents-sbs/run.sh (the same guest, agents
# and 100,000 JSON-lines events over 100 keys), as an interleaved A/B of weir
# binaries: wall time, CPU (user + sys) per event and context switches of the
# whole `weir run` process.
#   benches/sbs-ab.sh ROUNDS WEIR_BIN...     (VARIANTS="single chain memory")
# Needs the shared bench directory (SBS_DIR, default ../shared/bench/flink-agents-sbs).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
sbs=${SBS_DIR:-$repo/../shared/bench/flink-agents-sbs}
rounds=$1; shift
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$sbs/guest" "$work/guest"
sed -i "s#SDK_PATH#$repo/sdk#" "$work/guest/Cargo.toml"
(cd "$work/guest" && cargo build --quiet --release --target wasm32-wasip2 --target-dir "$work/guest/target")
wasm="$work/guest/target/wasm32-wasip2/release/sbs_bench.wasm"
for v in single chain memory; do
  {
    printf '[agent]\nname = "sbs-%s"\n\n[components.b]\npath = "%s"\n\n' "$v" "$wasm"
    if [ $v = chain ]; then
      printf '[actions.first]\ncomponent = "b"\nlisten = ["_input_event"]\n\n[actions.second]\ncomponent = "b"\nlisten = ["bench_processed"]\n'
    else
      printf '[actions.%s]\ncomponent = "b"\nlisten = ["_input_event"]\n' "$v"
    fi
  } > "$work/$v.toml"
done
"$repo/benches/sbs-input.py" 100000 "$work/in.jsonl"
for b in "$@"; do "$b" plan "$work/single.toml" >/dev/null; done   # warm the compile cache
for r in $(seq "$rounds"); do
  for v in ${VARIANTS:-single chain memory}; do
    for b in "$@"; do
      /usr/bin/time -o "$work/time" -f "%e %U %S %c %w" "$b" run "$work/$v.toml" --input "$work/in.jsonl" --output /dev/null >/dev/null 2>&1
      echo "$r $v $(basename "$b") $(tail -1 "$work/time")"
    done
  done
done | awk '{n=100000; cpu=$5+$6; printf "round %s %-7s %-12s %7.0f ev/s  cpu %5.2f s (%4.1f us/ev, sys %2.0f%%)  context switches %d+%d\n",$1,$2,$3,n/$4,cpu,cpu*1e6/n,100*$6/cpu,$7,$8}'
