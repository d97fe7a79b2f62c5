"""Losses every method shares: plain cross-entropy for teachers and no-teacher baselines."""

from __future__ import annotations

import ml_collections
import numpy as np

from jaxser import losses
from jaxser.errors import UserError


def ce(student_out, teacher_out, batch, cfg):
  """Cross-entropy on the labels (config keys: label_smoothing, class_weights).

  class_weights: one weight per class, or "balanced" (n / (C·n_c) of the fold's training
  labels), which the Experiment resolves per fold with `resolve_class_weights`.
  """
  del teacher_out
  weights = cfg.get("class_weights", None)
  if isinstance(weights, str):
    raise UserError(f"loss_cfg.class_weights={weights!r} reached the loss unresolved; give one "
                    "weight per class, or 'balanced' through the Experiment, which resolves it "
                    "per fold (methods.common.resolve_class_weights)")
  loss = losses.cross_entropy(student_out["logits"], batch["label"], mask=batch["mask"],
                              class_weights=None if not weights else tuple(weights),
                              label_smoothing=cfg.get("label_smoothing", 0.0))
  return loss, {"ce": loss}


def balanced_class_weights(labels, num_classes: int) -> tuple[float, ...]:
  """n / (C·n_c) for every class c of `labels` (sklearn's "balanced"); 0 for a class with no
  example, whose weight no training label ever picks."""
  counts = np.bincount(np.asarray(labels, np.int64), minlength=num_classes)
  return tuple(float(len(labels) / (num_classes * c)) if c else 0.0 for c in counts)


def resolve_class_weights(loss_cfg, labels, num_classes: int):
  """`loss_cfg` with `class_weights="balanced"` replaced by the weights of `labels` (the
  fold's training labels); any other loss_cfg is returned as it is."""
  if loss_cfg.get("class_weights", None) != "balanced":
    return loss_cfg
  return ml_collections.ConfigDict({**dict(loss_cfg.items()),
                                    "class_weights": balanced_class_weights(labels, num_classes)})
