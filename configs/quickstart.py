"""Quickstart: LiteCNN KD (Hinton-style α·CE + (1−α)·T²·KL) on the built-in synthetic corpus,
4 speaker-disjoint folds, CPU-sized.

An MLP teacher on eGeMAPS functionals (a "prosodic" teacher) is trained per
fold and its logits cached; a small LiteCNN-style raw-waveform student (first
2.5 s, per-utterance normalised as in the LiteCNN paper) is trained alone
(baseline) and with KD.
"""

import ml_collections

from jaxser.config_utils import stage_train


def get_config():
  c = ml_collections.ConfigDict()
  c.name = "quickstart"
  c.seed = 0
  c.method = "litecnn_kd"
  c.corpus = dict(name="synthetic", seed=0, num_speakers=8, utterances_per_speaker=48)
  c.protocol = dict(name="speaker_kfold", num_folds=4, valid_speakers=1, max_folds=0)
  c.train = dict(
      optimizer="adam", learning_rate=1e-3, weight_decay=0.0, schedule="constant",
      warmup_epochs=0, grad_clip_norm=0.0, grad_accum_steps=1, epochs=10, batch_size=32,
      eval_batch_size=64, select="ua",
      plateau=dict(patience=0, factor=0.5, monitor="loss"),
      early_stopping=dict(patience=0, monitor="ua"))

  student = dict(name="litecnn", stem_features=24, stem_kernel=80, stem_stride=8,
                 block_features=(32, 48, 64), block_kernel=9, hidden=64, dropout=0.2,
                 pool="masked_mean")
  waveform = dict(kind="waveform", max_seconds=2.5, normalize=True)
  # Batch 16 gives the small students twice the updates per epoch of batch 32 at the same cost.
  student_train = dict(batch_size=16, epochs=12)
  c.stage_order = ("teacher", "student_alone", "student_kd")
  c.stages = ml_collections.ConfigDict()
  c.stages.teacher = dict(
      model=dict(name="mlp", hidden=(128, 64), dropout=0.3),
      input=dict(kind="egemaps_functionals"),
      loss="ce", loss_cfg=dict(label_smoothing=0.0), teachers=(), train=stage_train(epochs=40))
  c.stages.student_alone = dict(model=student, input=waveform, loss="ce",
                                loss_cfg=dict(label_smoothing=0.0), teachers=(),
                                train=stage_train(**student_train))
  c.stages.student_kd = dict(model=student, input=waveform, loss="kd",
                             loss_cfg=dict(teacher="teacher", alpha=0.5, temperature=2.0),
                             teachers=("teacher",), train=stage_train(**student_train))
  # Report: per-fold KD − alone differences; parameters, MACs and batch-1 latency per stage.
  c.report = dict(compare=(("student_kd", "student_alone"),), latency_repeats=100)
  return c
