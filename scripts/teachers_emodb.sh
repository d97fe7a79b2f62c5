#!/usr/bin/env bash
# Teachers on EmoDB, leave-one-speaker-out over the 10 speakers (results/teachers_emodb):
# the frozen PyPI-packaged Whisper-base with a linear probe (one layer or a weighted sum of
# all; 30 s padded or 2 s input) and openSMILE ComParE-2016 / eGeMAPS functionals with a
# linear classifier, each with train-speaker and per-speaker normalisation, then the report.
#
#   scripts/teachers_emodb.sh [--config.<key>=<value> ...]
#
# Every stage is a linear model on features computed once per clip and cached on disk
# (~/.cache/jaxser): the first run spends ~5 min on the Whisper encoder and ~3 min on
# openSMILE, then each fold's stages train in seconds. Settings: configs/teachers_emodb.py.
set -euo pipefail
cd "$(dirname "$0")/.."
WORKDIR="${WORKDIR:-results/teachers_emodb}"
exec scripts/run_folds.sh configs/teachers_emodb.py "$WORKDIR" 10 "$@"
