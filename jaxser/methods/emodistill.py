"""EmoDistill (Shome & Etemad, ICASSP 2024): prosodic and linguistic teachers, speech-only student.

Stages: the linguistic teacher (`text_classifier` on transcript tokens) and the prosodic
teacher (`prosodic_resnet` on eGeMAPS low-level descriptors) train with `ce` and their
logits and embeddings are cached; the student (`emodistill_student` on the waveform)
trains with `distill` on the cached outputs, never running a teacher:

    α·[KL(y_S‖y_L; τ_L) + KL(y_S‖y_P; τ_P)] + β·[negcos(z'_L, z_L) + negcos(z'_P, z_P)] + γ·CE

(`emodistill_loss`). The paper's Table 2 rows are settings of `distill`:
w/o L_logits (alpha 0), w/o L_embeddings (beta 0), w/o a teacher (its name ""), w/o both
teachers (`ce` on the student).
"""

from __future__ import annotations

from typing import Optional

import jax

from jaxser import losses
from jaxser.methods.common import ce  # noqa: F401  (a stage loss of this method)
from jaxser.models.emodistill import emodistill_loss_inputs

Array = jax.Array

# loss_cfg keys that name teacher stages ("" leaves that teacher out).
TEACHER_KEYS = ("linguistic", "prosodic")


def emodistill_loss(
    *,
    logits: Array,
    labels: Array,
    student_logits_l: Optional[Array] = None,
    student_logits_p: Optional[Array] = None,
    teacher_logits_l: Optional[Array] = None,
    teacher_logits_p: Optional[Array] = None,
    student_emb_l: Optional[Array] = None,
    student_emb_p: Optional[Array] = None,
    teacher_emb_l: Optional[Array] = None,
    teacher_emb_p: Optional[Array] = None,
    alpha: float = 1.0,
    beta: float = 10.0,
    gamma: float = 2.0,
    tau_l: float = 5.0,
    tau_p: float = 0.5,
    t2_scale: bool = False,
    mask: Optional[Array] = None,
) -> tuple[Array, dict[str, Array]]:
  """EmoDistill (arXiv 2309.04849): α·[KL_L + KL_P] + β·[negcos_L + negcos_P] + γ·CE.

  KL_L, KL_P: hinton_kd per teacher at τ_L, τ_P (no τ² factor unless t2_scale); negcos_L, negcos_P:
  negative_cosine on the two projection embeddings (eq. 3-4); CE on the student's final logits.
  A teacher whose arrays are None is left out with its two terms (the paper's "w/o teacher" rows).
  """
  parts = {"ce": losses.cross_entropy(logits, labels, mask=mask)}
  sides = {"l": (student_logits_l, teacher_logits_l, student_emb_l, teacher_emb_l, tau_l),
           "p": (student_logits_p, teacher_logits_p, student_emb_p, teacher_emb_p, tau_p)}
  kl, negcos = [], []
  for side, (s_logits, t_logits, s_emb, t_emb, tau) in sides.items():
    if t_logits is None:
      continue
    parts[f"kl_{side}"] = losses.hinton_kd(s_logits, t_logits, tau, mask=mask, t2_scale=t2_scale)
    parts[f"negcos_{side}"] = losses.negative_cosine(s_emb, t_emb, mask=mask)
    kl.append(parts[f"kl_{side}"])
    negcos.append(parts[f"negcos_{side}"])
  total = alpha * sum(kl) + beta * sum(negcos) + gamma * parts["ce"]
  return total, parts


def distill(student_out, teacher_out, batch, cfg):
  """The EmoDistill loss; config keys: linguistic, prosodic (teacher stage names, "" leaves
  one out), alpha, beta, gamma, tau_l, tau_p."""
  teacher = lambda name: teacher_out[name] if name else None
  args = emodistill_loss_inputs(student_out, teacher(cfg.linguistic), teacher(cfg.prosodic))
  return emodistill_loss(**args, labels=batch["label"], alpha=cfg.alpha, beta=cfg.beta,
                         gamma=cfg.gamma, tau_l=cfg.tau_l, tau_p=cfg.tau_p, mask=batch["mask"])
