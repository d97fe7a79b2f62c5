"""LiteCNN knowledge distillation (Pate & Vayeda 2025), also the quickstart's method.

A teacher (the paper: a wav2vec2 classifier fine-tuned on CREMA-D) is trained with
`ce` and its logits cached; a LiteCNN student learns with `ce` alone (the
no-distillation baseline) or with `kd` = α·CE + (1−α)·T²·KL(teacher ‖ student) on the
cached logits. Table 1 rows: teacher = `ce` on the teacher stage, "student alone" =
`ce` on the student, "KD student" = `kd`.

The paper's text gives α = 0.5 weighting the CE term, T = 2; the authors' code
(shripadpate20/SpeechEmotionDistill, kd.py) weights the *KL* term by α, with α = 0.7
and T = 3 (i.e. 0.3·CE + 0.7·T²·KL). The configs follow the paper's text; the
authors' setting is loss_cfg alpha=0.3, temperature=3.
"""

from __future__ import annotations

from typing import Optional

import jax

from jaxser import losses
from jaxser.methods.common import ce  # noqa: F401  (a stage loss of this method)

Array = jax.Array


def litecnn_kd_loss(student_logits: Array, teacher_logits: Array, labels: Array, *,
                    alpha: float = 0.5, temperature: float = 2.0,
                    mask: Optional[Array] = None) -> tuple[Array, dict[str, Array]]:
  """α·CE + (1−α)·T²·KL(T) (Hinton et al. 2015 form; the "kd" part already includes T²)."""
  parts = {
      "ce": losses.cross_entropy(student_logits, labels, mask=mask),
      "kd": losses.hinton_kd(student_logits, teacher_logits, temperature, mask=mask,
                             t2_scale=True),
  }
  return alpha * parts["ce"] + (1.0 - alpha) * parts["kd"], parts


def kd(student_out, teacher_out, batch, cfg):
  """α·CE + (1−α)·T²·KL; config keys: teacher (stage name), alpha, temperature."""
  return litecnn_kd_loss(student_out["logits"], teacher_out[cfg.teacher]["logits"],
                         batch["label"], alpha=cfg.alpha, temperature=cfg.temperature,
                         mask=batch["mask"])
