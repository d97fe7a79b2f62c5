#!/usr/bin/env bash
# LiteCNN KD on EmoDB, leave-one-speaker-out over the 10 speakers: the frozen-Whisper and
# ComParE teachers on 1 s windows, the LiteCNN student alone and with KD from each teacher,
# then the report (results/litecnn_kd_emodb).
#
#   scripts/litecnn_emodb.sh [--config.<key>=<value> ...]
#
# Folds run in parallel processes (JOBS, default one per core; scripts/run_folds.sh).
# Re-running resumes: finished stages are skipped, so the run can be spread over several
# sittings. Settings, time budget and measured figures: configs/litecnn_kd_emodb.py.
set -euo pipefail
cd "$(dirname "$0")/.."
WORKDIR="${WORKDIR:-results/litecnn_kd_emodb}"
exec scripts/run_folds.sh configs/litecnn_kd_emodb.py "$WORKDIR" 10 "$@"
