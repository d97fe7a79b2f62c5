"""DKDFMH (Zhao et al., ICASSP 2024): decoupled knowledge distillation between two DKDFMH nets.

The teacher (the same network, trained first with `ce`) has its segment logits cached;
each student row of the paper's ablation is one loss here, all on the cached logits:

    ce     CE alone                               ("CNN", "CNN+MHA" rows)
    kd     CE + T²·KL(teacher ‖ student)          ("+KD", Hinton et al. 2015)
    tckd   CE + α·TCKD                            ("TCKD" row)
    nckd   CE + β·NCKD                            ("NCKD" row)
    dkd    CE + α·TCKD + β·NCKD                   ("DKDFMH" row; α = 1, β = 8, T = 4)

TCKD/NCKD follow mdistiller's DKD.py (jaxser.losses.tckd / nckd / dkd). mdistiller's
linear warm-up of the DKD term (scaled by min(epoch / warmup, 1), epochs from 1; 20 on
CIFAR) is loss_cfg `warmup_epochs`, off (0) by default: the DKDFMH paper does not mention one.
"""

from __future__ import annotations

from typing import Optional

import jax

from jaxser import losses
from jaxser.methods.common import ce  # noqa: F401  (a stage loss of this method)

Array = jax.Array


def dkdfmh_loss(student_logits: Array, teacher_logits: Array, labels: Array, *,
                alpha: float = 1.0, beta: float = 8.0, temperature: float = 4.0,
                ce_weight: float = 1.0, warmup_factor=1.0,
                mask: Optional[Array] = None) -> tuple[Array, dict[str, Array]]:
  """ce_weight·CE + warmup_factor·(α·TCKD + β·NCKD), the DKD of Zhao et al. 2022 (mdistiller).

  warmup_factor is losses.dkd_warmup_factor(epoch, warmup) in mdistiller; 1 means no warm-up.
  """
  parts = {
      "ce": losses.cross_entropy(student_logits, labels, mask=mask),
      "tckd": losses.tckd(student_logits, teacher_logits, labels, temperature=temperature,
                          mask=mask),
      "nckd": losses.nckd(student_logits, teacher_logits, labels, temperature=temperature,
                          mask=mask),
  }
  total = ce_weight * parts["ce"] + warmup_factor * (alpha * parts["tckd"] + beta * parts["nckd"])
  return total, parts


def kd(student_out, teacher_out, batch, cfg):
  """CE + kd_weight·T²·KL; config keys: teacher, temperature, kd_weight (default 1)."""
  labels, mask = batch["label"], batch["mask"]
  parts = {"ce": losses.cross_entropy(student_out["logits"], labels, mask=mask),
           "kd": losses.hinton_kd(student_out["logits"], teacher_out[cfg.teacher]["logits"],
                                  cfg.temperature, mask=mask, t2_scale=True)}
  return parts["ce"] + cfg.get("kd_weight", 1.0) * parts["kd"], parts


def _decoupled(student_out, teacher_out, batch, cfg, alpha, beta):
  # mdistiller counts epochs from 1, so its first epoch already has weight 1 / warmup.
  epochs = cfg.get("warmup_epochs", 0)
  warmup = losses.dkd_warmup_factor(batch["epoch"] + 1, epochs) if epochs > 0 else 1.0
  return dkdfmh_loss(student_out["logits"], teacher_out[cfg.teacher]["logits"],
                     batch["label"], alpha=alpha, beta=beta,
                     temperature=cfg.temperature, warmup_factor=warmup, mask=batch["mask"])


def tckd(student_out, teacher_out, batch, cfg):
  """CE + α·TCKD; config keys: teacher, alpha, temperature, warmup_epochs (default 0)."""
  return _decoupled(student_out, teacher_out, batch, cfg, cfg.alpha, 0.0)


def nckd(student_out, teacher_out, batch, cfg):
  """CE + β·NCKD; config keys: teacher, beta, temperature, warmup_epochs (default 0)."""
  return _decoupled(student_out, teacher_out, batch, cfg, 0.0, cfg.beta)


def dkd(student_out, teacher_out, batch, cfg):
  """CE + α·TCKD + β·NCKD; config keys: teacher, alpha, beta, temperature, warmup_epochs
  (default 0)."""
  return _decoupled(student_out, teacher_out, batch, cfg, cfg.alpha, cfg.beta)
