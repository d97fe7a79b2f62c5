"""Losses every method shares: plain cross-entropy for teachers and no-teacher baselines."""

from __future__ import annotations

from jaxser import losses


def ce(student_out, teacher_out, batch, cfg):
  """Cross-entropy on the labels (config keys: label_smoothing, class_weights)."""
  del teacher_out
  weights = cfg.get("class_weights", None)
  loss = losses.cross_entropy(student_out["logits"], batch["label"], mask=batch["mask"],
                              class_weights=None if not weights else tuple(weights),
                              label_smoothing=cfg.get("label_smoothing", 0.0))
  return loss, {"ce": loss}
