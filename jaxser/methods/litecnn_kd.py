"""LiteCNN knowledge distillation (Pate & Vayeda 2025), also the quickstart's method.

A teacher (the paper: a wav2vec2 classifier fine-tuned on CREMA-D) is trained with
`ce` and its logits cached; a LiteCNN student learns with `ce` alone (the
no-distillation baseline) or with `kd` = α·CE + (1−α)·T²·KL(teacher ‖ student) on the
cached logits.

The paper's text gives α = 0.5 weighting the CE term, T = 2; the authors' code
(shripadpate20/SpeechEmotionDistill, kd.py) weights the *KL* term by α, with α = 0.7
and T = 3 (i.e. 0.3·CE + 0.7·T²·KL). The configs follow the paper's text; the
authors' setting is loss_cfg alpha=0.3, temperature=3.
"""

from __future__ import annotations

from jaxser import losses
from jaxser.methods.common import ce  # noqa: F401  (a stage loss of this method)


def kd(student_out, teacher_out, batch, cfg):
  """α·CE + (1−α)·T²·KL; config keys: teacher (stage name), alpha, temperature."""
  loss, parts = losses.litecnn_kd_loss(student_out["logits"],
                                       teacher_out[cfg.teacher]["logits"], batch["label"],
                                       alpha=cfg.alpha, temperature=cfg.temperature,
                                       mask=batch["mask"])
  return loss, parts
