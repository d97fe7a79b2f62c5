#!/usr/bin/env bash
# DKDFMH on EmoDB, leave-one-speaker-out. `beta_sweep` (the default) trains the six-row
# ablation (CNN, CNN+MHA, +KD, TCKD, NCKD, DKD) and DKD at β ∈ {1, 2, 4, 16} (β = 8 is the
# DKD row) into results/dkdfmh_emodb, whose report holds both tables; `ablation` trains
# only the six rows, into results/dkdfmh_emodb_ablation.
#
#   scripts/dkdfmh_emodb.sh [beta_sweep|ablation] [--config.<key>=<value> ...]
#
# Folds run in parallel processes (JOBS, default one per core; scripts/run_folds.sh).
# Re-running resumes. Settings: configs/dkdfmh_emodb.py.
set -euo pipefail
cd "$(dirname "$0")/.."
variant="${1:-beta_sweep}"
[ $# -gt 0 ] && shift
case "$variant" in
  beta_sweep) workdir=results/dkdfmh_emodb ;;
  ablation) workdir=results/dkdfmh_emodb_ablation ;;
  *) echo "scripts/dkdfmh_emodb.sh: unknown variant '$variant'; use beta_sweep or ablation" >&2
     exit 2 ;;
esac
exec scripts/run_folds.sh "configs/dkdfmh_emodb.py:$variant" "${WORKDIR:-$workdir}" 10 "$@"
