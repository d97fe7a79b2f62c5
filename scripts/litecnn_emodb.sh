#!/usr/bin/env bash
# LiteCNN KD on EmoDB, leave-one-speaker-out over the 10 speakers: the eGeMAPS MLP teacher,
# the LiteCNN student alone and the KD student, into runs/litecnn_kd_emodb, then the report.
#
#   scripts/litecnn_emodb.sh [--workdir=DIR] [--config.<key>=<value> ...]
#
# e.g. --workdir=runs/emodb_3folds --config.protocol.max_folds=3 for the first 3 folds (a
# different config needs its own run directory). Re-running resumes: finished stages are
# skipped. Settings, time budget and measured figures: configs/litecnn_kd_emodb.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}"
export TF_CPP_MIN_LOG_LEVEL=2 TF_ENABLE_ONEDNN_OPTS=0 NO_GCE_CHECK=true
WORKDIR=runs/litecnn_kd_emodb
args=()
for arg in "$@"; do
  case "$arg" in
    --workdir=*) WORKDIR="${arg#--workdir=}" ;;
    *) args+=("$arg") ;;
  esac
done
mkdir -p "$(dirname "$WORKDIR")"
"$PYTHON" -m jaxser.train --config configs/litecnn_kd_emodb.py --workdir "$WORKDIR" \
    ${args[@]+"${args[@]}"}
cat "$WORKDIR/report.md"
