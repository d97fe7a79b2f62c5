"""DKDFMH (Zhao et al., ICASSP 2024): decoupled knowledge distillation between two DKDFMH nets.

The teacher (the same network, trained first with `ce`) has its segment logits cached;
each student row of the paper's ablation is one loss here, all on the cached logits:

    ce     CE alone                               ("CNN", "CNN+MHA" rows)
    kd     CE + T²·KL(teacher ‖ student)          ("+KD", Hinton et al. 2015)
    tckd   CE + α·TCKD                            ("TCKD" row)
    nckd   CE + β·NCKD                            ("NCKD" row)
    dkd    CE + α·TCKD + β·NCKD                   ("DKDFMH" row; α = 1, β = 8, T = 4)

TCKD/NCKD follow mdistiller's DKD.py (jaxser.losses.dkd). mdistiller's linear warm-up
of the DKD term is not applied: the DKDFMH paper does not mention one.
"""

from __future__ import annotations

from jaxser import losses
from jaxser.methods.common import ce  # noqa: F401  (a stage loss of this method)


def kd(student_out, teacher_out, batch, cfg):
  """CE + kd_weight·T²·KL; config keys: teacher, temperature, kd_weight (default 1)."""
  labels, mask = batch["label"], batch["mask"]
  parts = {"ce": losses.cross_entropy(student_out["logits"], labels, mask=mask),
           "kd": losses.hinton_kd(student_out["logits"], teacher_out[cfg.teacher]["logits"],
                                  cfg.temperature, mask=mask, t2_scale=True)}
  return parts["ce"] + cfg.get("kd_weight", 1.0) * parts["kd"], parts


def _decoupled(student_out, teacher_out, batch, cfg, alpha, beta):
  return losses.dkdfmh_loss(student_out["logits"], teacher_out[cfg.teacher]["logits"],
                            batch["label"], alpha=alpha, beta=beta,
                            temperature=cfg.temperature, mask=batch["mask"])


def tckd(student_out, teacher_out, batch, cfg):
  """CE + α·TCKD; config keys: teacher, alpha, temperature."""
  return _decoupled(student_out, teacher_out, batch, cfg, cfg.alpha, 0.0)


def nckd(student_out, teacher_out, batch, cfg):
  """CE + β·NCKD; config keys: teacher, beta, temperature."""
  return _decoupled(student_out, teacher_out, batch, cfg, 0.0, cfg.beta)


def dkd(student_out, teacher_out, batch, cfg):
  """CE + α·TCKD + β·NCKD; config keys: teacher, alpha, beta, temperature."""
  return _decoupled(student_out, teacher_out, batch, cfg, cfg.alpha, cfg.beta)
