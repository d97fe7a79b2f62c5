"""EmoDistill (Shome & Etemad, ICASSP 2024): prosodic and linguistic teachers, speech-only student.

Stages: the linguistic teacher (`text_classifier` on transcript tokens) and the prosodic
teacher (`prosodic_resnet` on eGeMAPS low-level descriptors) train with `ce` and their
logits and embeddings are cached; the student (`emodistill_student` on the waveform)
trains with `distill` on the cached outputs, never running a teacher:

    α·[KL(y_S‖y_L; τ_L) + KL(y_S‖y_P; τ_P)] + β·[negcos(z'_L, z_L) + negcos(z'_P, z_P)] + γ·CE

(jaxser.losses.emodistill_loss). The paper's Table 2 rows are settings of `distill`:
w/o L_logits (alpha 0), w/o L_embeddings (beta 0), w/o a teacher (its name ""), w/o both
teachers (`ce` on the student).
"""

from __future__ import annotations

from jaxser import losses
from jaxser.methods.common import ce  # noqa: F401  (a stage loss of this method)
from jaxser.models.emodistill import emodistill_loss_inputs


def distill(student_out, teacher_out, batch, cfg):
  """The EmoDistill loss; config keys: linguistic, prosodic (teacher stage names, "" leaves
  one out), alpha, beta, gamma, tau_l, tau_p."""
  teacher = lambda name: teacher_out[name] if name else None
  args = emodistill_loss_inputs(student_out, teacher(cfg.linguistic), teacher(cfg.prosodic))
  return losses.emodistill_loss(**args, labels=batch["label"], alpha=cfg.alpha, beta=cfg.beta,
                                gamma=cfg.gamma, tau_l=cfg.tau_l, tau_p=cfg.tau_p,
                                mask=batch["mask"])
