"""Hinton knowledge distillation (the quickstart method): α·CE + (1−α)·T²·KL(teacher‖student).

Stages in the config: a teacher trained with `ce`, a student trained with `ce`
alone (the no-distillation baseline) and a student trained with `kd` on the
teacher's cached logits.
"""

from __future__ import annotations

from jaxser import losses
from jaxser.methods.common import ce  # noqa: F401  (a stage loss of this method)


def kd(student_out, teacher_out, batch, cfg):
  """config keys: teacher (stage name), alpha, temperature."""
  loss, parts = losses.litecnn_kd_loss(student_out["logits"],
                                       teacher_out[cfg.teacher]["logits"], batch["label"],
                                       alpha=cfg.alpha, temperature=cfg.temperature,
                                       mask=batch["mask"])
  return loss, parts
