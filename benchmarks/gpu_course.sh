#!/usr/bin/env bash
# The GPU run of issue 13, as one script: build the gpu chain from an offline GPT-2-shaped base, run the
# benchmark suite on it, then notebooks 00-08 under the gpu profile, timing every step. Meant for a short
# loan of an H100/H200-class GPU with no network (nothing is downloaded):
#
#   bash benchmarks/gpu_course.sh [OUT]      # OUT: where the timings and logs go (default runs/gpu-course)
#
# PRETRAIN_STEPS (default 300; the preset is 3,000) keeps the offline base short: the chain's SFT, labels,
# reward model and the notebooks then run at their full gpu sizes on it, which is what their timings are
# for. SKIP_NOTEBOOKS=1 stops after the benchmarks. Every step's wall time goes to OUT/timings.tsv.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/gpu-course}
mkdir -p "$OUT"
PY=${PY:-.venv/bin/python}
CLI=${CLI:-.venv/bin/rlhf-lab}
export RLHF_LAB_PROFILE=gpu RLHF_LAB_BASE=${RLHF_LAB_BASE:-runs/models/gpt2-upt}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/gpu.txt" 2>&1
printf 'step\tseconds\tstatus\n' > "$OUT/timings.tsv"

step() {   # step NAME COMMAND...: run, log, time
    local name=$1; shift
    local start=$(date +%s.%N)
    "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    printf '%s\t%.1f\t%s\n' "$name" "$(echo "$(date +%s.%N) - $start" | bc)" "$rc" | tee -a "$OUT/timings.tsv"
    return $rc
}

[ -d "$RLHF_LAB_BASE" ] || step pretrain "$CLI" pretrain --size gpt2 --steps "${PRETRAIN_STEPS:-300}" --out "$RLHF_LAB_BASE" \
    || exit 1
step prepare "$CLI" prepare --profile gpu --base "$RLHF_LAB_BASE" || exit 1
step benchmarks "$PY" -m benchmarks --profile gpu --model runs/gpu/sft --json "$OUT/benchmarks.json"
if [ "${SKIP_NOTEBOOKS:-0}" != 1 ]; then
    for nb in notebooks/0[0-8]_*.ipynb; do
        step "$(basename "$nb" .ipynb)" .venv/bin/jupyter nbconvert --to notebook --execute \
            --ExecutePreprocessor.timeout=1800 --output-dir "$OUT" "$nb"
    done
fi
cat "$OUT/gpu.txt" "$OUT/timings.tsv"
