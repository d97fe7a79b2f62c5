"""A stage's training-batch augmenter, picked from its settings (each excludes the others):
waveform noise (`stages.<name>.noise`), feature masking (`spec_augment`), or modality masking
of dialogue inputs (`modality_mask`, COGMEN's masked training); None without one."""

from __future__ import annotations

from jaxser.data.spec_augment import SpecAugment
from jaxser.stage_features import modality_mask, noise


def augmenter(config, corpus, name: str, inputs, train_ids, seed: int):
  """Stage `name`'s augmenter, drawing from `seed` (its `StagePlan.seed`), or None."""
  # `stage_checks.check_stage` refused any two of them, and masking of inputs without frames;
  # `modality_mask` refuses inputs without streams.
  stage = config.stages[name]
  if stage.get("modality_mask"):
    return modality_mask.ModalityMask(stage.modality_mask, seed, inputs.streams,
                                      f"config.stages.{name}.modality_mask")
  if stage.get("spec_augment"):
    return SpecAugment(stage.spec_augment, seed, f"config.stages.{name}.spec_augment")
  return noise.augmenter(config, corpus, name, inputs, train_ids, seed=seed)
