"""MLKD (Liu et al., arXiv 2312.13556): noise-robust multi-level distillation of wav2vec2.

A wav2vec2 classifier teacher trains on clean speech with `ce`; its logits and every
layer's hidden states on the clean input are cached once per fold. The student (half
the teacher's layers, initialised from its even layers: `stages.<name>.init_from`) sees
noisy speech (`stages.<name>.noise`) and learns with `mlkd` = α·KL(T) + (1−α)·CE +
Σ MSE(teacher layer 2i, student layer i) over valid frames, or with `ce` alone (the
paper's student without supervision). The paper's tables: UA per noise type × SNR is the
noisy test grid (`config.eval_noise`) of the `teacher`, `student_alone` and `mlkd` stages;
parameters and inference time of teacher vs student are the report's efficiency table.
"""

from __future__ import annotations

from typing import Optional, Sequence

import jax
import jax.numpy as jnp

from jaxser import losses
from jaxser.losses import HiddenStates
from jaxser.methods.common import ce  # noqa: F401  (a stage loss of this method)

Array = jax.Array


def mlkd_layer_map(num_student_layers: int = 6) -> tuple[tuple[int, int], ...]:
  """MLKD's pairing: teacher layer 2i supervises student layer i, i = 1..n (HF hidden_states indices)."""
  return tuple((2 * i, i) for i in range(1, num_student_layers + 1))


def mlkd_loss(
    student_logits: Array,
    teacher_logits: Array,
    labels: Array,
    student_hidden: HiddenStates,
    teacher_hidden: HiddenStates,
    layer_map: Sequence[tuple[int, int]],
    *,
    alpha: float = 0.7,
    temperature: float = 7.0,
    t2_scale: bool = False,
    frame_mask: Optional[Array] = None,
    mask: Optional[Array] = None,
) -> tuple[Array, dict[str, Array]]:
  """α·KL(T) + (1−α)·CE + L_MSE.

  KL(T) is hinton_kd at temperature T, with no T² factor unless t2_scale; L_MSE is
  losses.hidden_state_mse (eq. 1) over layer_map (mlkd_layer_map: teacher 2i → student i).
  """
  parts = {
      "kd": losses.hinton_kd(student_logits, teacher_logits, temperature, mask=mask,
                             t2_scale=t2_scale),
      "ce": losses.cross_entropy(student_logits, labels, mask=mask),
      "mse": losses.hidden_state_mse(student_hidden, teacher_hidden, layer_map,
                                     frame_mask=frame_mask, mask=mask),
  }
  total = alpha * parts["kd"] + (1.0 - alpha) * parts["ce"] + parts["mse"]
  return total, parts


def mlkd(student_out, teacher_out, batch, cfg):
  """Config keys: teacher (stage name), alpha, temperature, layer_map (pairs of teacher and
  student hidden-state indices, HF's order: 0 is the encoder input; empty: 2i -> i)."""
  teacher = teacher_out[cfg.teacher]
  student_hidden = jnp.moveaxis(student_out["hidden_states"], 1, 0)  # [L + 1, B, T, D]
  teacher_hidden = jnp.moveaxis(teacher["hidden_states"], 1, 0)
  layer_map = (tuple(tuple(p) for p in cfg.get("layer_map", ()))
               or mlkd_layer_map(student_hidden.shape[0] - 1))
  return mlkd_loss(student_out["logits"], teacher["logits"], batch["label"],
                   student_hidden, teacher_hidden, layer_map, alpha=cfg.alpha,
                   temperature=cfg.temperature, frame_mask=student_out["frame_mask"],
                   mask=batch["mask"])
