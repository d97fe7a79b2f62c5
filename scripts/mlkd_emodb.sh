#!/usr/bin/env bash
# MLKD on EmoDB, leave-one-speaker-out: teacher, student alone on noisy speech and MLKD
# student, with the noisy-test grid, into results/mlkd_emodb.
#
#   scripts/mlkd_emodb.sh [--config.<key>=<value> ...]
#
# Folds run in parallel processes (JOBS, default one per core; scripts/run_folds.sh).
# Re-running resumes. Settings: configs/mlkd_emodb.py.
set -euo pipefail
cd "$(dirname "$0")/.."
exec scripts/run_folds.sh configs/mlkd_emodb.py "${WORKDIR:-results/mlkd_emodb}" 10 "$@"
