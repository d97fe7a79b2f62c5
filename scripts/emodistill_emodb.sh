#!/usr/bin/env bash
# EmoDistill on EmoDB, leave-one-speaker-out: the teachers and Table 2's ablation rows into
# results/emodistill_emodb, or a temperature sweep (τ_L or τ_P, the paper's Figure 2) into
# results/emodistill_emodb_<variant>.
#
#   scripts/emodistill_emodb.sh ablation|tau_l_sweep|tau_p_sweep [--config.<key>=<value> ...]
#
# Folds run in parallel processes (JOBS, default one per core; scripts/run_folds.sh).
# Re-running resumes. Settings: configs/emodistill_emodb.py.
set -euo pipefail
cd "$(dirname "$0")/.."
variant="${1:?usage: scripts/emodistill_emodb.sh ablation|tau_l_sweep|tau_p_sweep [overrides]}"
shift
case "$variant" in
  ablation) workdir=results/emodistill_emodb ;;
  tau_l_sweep|tau_p_sweep) workdir="results/emodistill_emodb_$variant" ;;
  *) echo "scripts/emodistill_emodb.sh: unknown variant '$variant'; use ablation, tau_l_sweep" \
          "or tau_p_sweep" >&2
     exit 2 ;;
esac
exec scripts/run_folds.sh "configs/emodistill_emodb.py:$variant" "${WORKDIR:-$workdir}" 10 "$@"
