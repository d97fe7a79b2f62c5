#!/usr/bin/env bash
# Runs one config's folds in JOBS processes that share a run directory, one per CPU core
# (or accelerator), then reports every fold. Re-running resumes: finished stages are skipped.
#
#   scripts/run_folds.sh CONFIG WORKDIR NUM_FOLDS [--config.<key>=<value> ...]
#
# JOBS (default: the number of cores) processes; process j runs folds j, j+JOBS, ... and is
# pinned to core j (taskset). On a 2-core CPU, bare LiteCNN train steps ran 1.3x faster in
# total as two pinned processes than as one process on both cores; whole epochs (evaluation,
# checkpoints) gained less. PYTHON picks the interpreter (default .venv/bin/python, else python).
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=$1 WORKDIR=$2 NUM_FOLDS=$3
shift 3
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}"
JOBS="${JOBS:-$(nproc)}"
export TF_CPP_MIN_LOG_LEVEL=2 TF_ENABLE_ONEDNN_OPTS=0 NO_GCE_CHECK=true
mkdir -p "$(dirname "$WORKDIR")"
train() { "$PYTHON" -m jaxser.train --config "$CONFIG" --workdir "$WORKDIR" "$@"; }
if [ "$JOBS" -gt 1 ]; then
  pids=()
  for ((j = 0; j < JOBS && j < NUM_FOLDS; j++)); do
    folds=$(seq -s, "$j" "$JOBS" $((NUM_FOLDS - 1)))
    pin=()
    command -v taskset >/dev/null && pin=(taskset -c $((j % $(nproc))))
    "${pin[@]}" "$PYTHON" -m jaxser.train --config "$CONFIG" --workdir "$WORKDIR" \
        --folds="$folds" "$@" > "$WORKDIR.job$j.log" 2>&1 &
    pids+=($!)
  done
  status=0
  for p in "${pids[@]}"; do wait "$p" || status=1; done
  if [ $status -ne 0 ]; then
    echo "a fold process failed; see $WORKDIR.job*.log" >&2
    exit 1
  fi
fi
train "$@"  # every fold done by now (JOBS=1: runs them all), so this writes the full report
cat "$(ls -t "$WORKDIR"/report*.md | head -1)"  # the report this run wrote (config.report.file)
