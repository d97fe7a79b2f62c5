#!/usr/bin/env bash
# DKDFMH on EmoDB, leave-one-speaker-out, into results/dkdfmh_emodb: `ablation` trains the
# six rows (CNN, CNN+MHA, +KD, TCKD, NCKD, DKD; report.md), `beta_sweep` DKD at
# β ∈ {1, 2, 4, 8, 16} (report_beta_sweep.md). They share the run directory, so the teacher
# and β = 8 (the DKD row) train once for both.
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
  ablation|beta_sweep) ;;
  *) echo "scripts/dkdfmh_emodb.sh: unknown variant '$variant'; use ablation or beta_sweep" >&2
     exit 2 ;;
esac
exec scripts/run_folds.sh "configs/dkdfmh_emodb.py:$variant" "${WORKDIR:-results/dkdfmh_emodb}" 10 "$@"
