#!/usr/bin/env bash
# DKDFMH on EmoDB, leave-one-speaker-out: the six-row ablation (CNN, CNN+MHA, +KD, TCKD,
# NCKD, DKD) into results/dkdfmh_emodb, or the β sweep (β ∈ {1, 2, 4, 8, 16}) into
# results/dkdfmh_emodb_beta_sweep.
#
#   scripts/dkdfmh_emodb.sh ablation|beta_sweep [--config.<key>=<value> ...]
#
# Folds run in parallel processes (JOBS, default one per core; scripts/run_folds.sh).
# Re-running resumes. Settings: configs/dkdfmh_emodb.py.
set -euo pipefail
cd "$(dirname "$0")/.."
variant="${1:?usage: scripts/dkdfmh_emodb.sh ablation|beta_sweep [overrides]}"
shift
case "$variant" in
  ablation) workdir=results/dkdfmh_emodb ;;
  beta_sweep) workdir=results/dkdfmh_emodb_beta_sweep ;;
  *) echo "scripts/dkdfmh_emodb.sh: unknown variant '$variant'; use ablation or beta_sweep" >&2
     exit 2 ;;
esac
exec scripts/run_folds.sh "configs/dkdfmh_emodb.py:$variant" "${WORKDIR:-$workdir}" 10 "$@"
