#!/usr/bin/env bash
# The side-by-side agents (../shared/bench/flink-agents-sbs: upper-case a
# sentence and count its words; variants single, chain, memory; 100 keys)
# with their actions in Rust, Python and JavaScript (tests/guests/bench,
# tests/python-guests/bench-py, tests/js-guests/bench-js), a fresh instance
# per task (and, as variant `reuse`, the single agent on warm instances:
# isolation = { reuse = "any", max_tasks = 1000 }), through `weir run` (the
# whole process: records/s, CPU per record),
# interleaved with Apache Flink Agents 0.3.1 local mode running the same
# Python functions natively when FA_VENV is given (a virtualenv with
# flink-agents 0.3.1 and apache-flink 2.2, as ../shared/README.md says).
#   benches/langs.sh WEIR_BIN [ROUNDS] [N]       (FA_VENV, FA_N: records for
#   Flink Agents, default 10000; VARIANTS, LANGS)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
sbs=${SBS_DIR:-$repo/../shared/bench/flink-agents-sbs}
weir=$(realpath "$1")
rounds=${2:-3}
n=${3:-20000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$repo" && scripts/build-skills && WEIR=$weir scripts/build-python-skills && WEIR=$weir scripts/build-js-skills)
components=$repo/build/components
declare -A wasm=([rust]=$components/guest_bench.wasm [python]=$components/skill_bench_py.wasm [js]=$components/skill_bench_js.wasm)
for lang in rust python js; do
  for v in single chain memory reuse; do
    {
      printf '[agent]\nname = "bench-%s"\n\n[components.b]\npath = "%s"\n\n' "$v" "${wasm[$lang]}"
      case $v in
        chain) printf '[actions.first]\ncomponent = "b"\nlisten = ["_input_event"]\n\n[actions.second]\ncomponent = "b"\nlisten = ["bench_processed"]\n' ;;
        reuse) printf '[actions.single]\ncomponent = "b"\nlisten = ["_input_event"]\nisolation = { reuse = "any", max_tasks = 1000 }\n' ;;
        *) printf '[actions.%s]\ncomponent = "b"\nlisten = ["_input_event"]\n' "$v" ;;
      esac
    } > "$work/$lang-$v.toml"
  done
  "$weir" plan "$work/$lang-single.toml" >/dev/null   # warm the compile cache
done
"$repo/benches/sbs-input.py" "$n" "$work/in.jsonl"
for r in $(seq "$rounds"); do
  for v in ${VARIANTS:-single chain memory reuse}; do
    if [ -n "${FA_VENV:-}" ] && [ "$v" != reuse ]; then
      fa=$(cd "$sbs" && "$FA_VENV/bin/python" bench_local.py --n "${FA_N:-10000}" --variant "$v" --keys 100 --logging off --repeat 1 --json 2>/dev/null | tail -1)
      echo "$fa" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("'"$r $v"' flink-agents", d["records_per_s"], d["cpu_us_per_record_best"])'
    fi
    for lang in ${LANGS:-rust python js}; do
      /usr/bin/time -o "$work/time" -f "%e %U %S" "$weir" run "$work/$lang-$v.toml" --input "$work/in.jsonl" --output "$work/out.jsonl" >/dev/null 2>&1
      lines=$(wc -l < "$work/out.jsonl")
      [ "$lines" -eq "$n" ] || { echo "weir $lang $v wrote $lines outputs for $n inputs" >&2; exit 1; }
      read -r wall user sys < "$work/time"
      python3 -c "print('$r $v weir-$lang', round($n/$wall), round(($user+$sys)*1e6/$n, 1))"
    done
  done
done | awk '{printf "round %s %-7s %-13s %8.0f records/s  %7.1f us CPU per record\n",$1,$2,$3,$4,$5}'
