#!/usr/bin/env bash
# EmoDistill on EmoDB, leave-one-speaker-out, into results/emodistill_emodb: `ablation` the
# teachers and Table 2's rows (report.md), `refit` those rows refit on the training +
# validation speakers (report_refit.md), `tau_l_sweep` / `tau_p_sweep` a temperature sweep
# (the paper's Figure 2; report_<variant>.md), `seeds` the student alone and EmoDistill under
# four more training seeds (report_seeds.md). The variants share the run directory, so the
# teachers and the paper's τ (the `emodistill` row) train once for all.
#
#   scripts/emodistill_emodb.sh ablation|refit|tau_l_sweep|tau_p_sweep|seeds [--config.<key>=<value> ...]
#
# Folds run in parallel processes (JOBS, default one per core; scripts/run_folds.sh).
# Re-running resumes. Settings: configs/emodistill_emodb.py.
set -euo pipefail
cd "$(dirname "$0")/.."
variant="${1:?usage: scripts/emodistill_emodb.sh ablation|refit|tau_l_sweep|tau_p_sweep|seeds [overrides]}"
shift
case "$variant" in
  ablation|refit|tau_l_sweep|tau_p_sweep|seeds) ;;
  *) echo "scripts/emodistill_emodb.sh: unknown variant '$variant'; use ablation, refit," \
          "tau_l_sweep, tau_p_sweep or seeds" >&2
     exit 2 ;;
esac
exec scripts/run_folds.sh "configs/emodistill_emodb.py:$variant" \
    "${WORKDIR:-results/emodistill_emodb}" 10 "$@"
