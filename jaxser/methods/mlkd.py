"""MLKD (Liu et al., arXiv 2312.13556): noise-robust multi-level distillation of wav2vec2.

A wav2vec2 classifier teacher trains on clean speech with `ce`; its logits and every
layer's hidden states on the clean input are cached once per fold. The student (half
the teacher's layers, initialised from its even layers: `stages.<name>.init_from`) sees
noisy speech (`stages.<name>.noise`) and learns with `mlkd` = α·KL(T) + (1−α)·CE +
Σ MSE(teacher layer 2i, student layer i) over valid frames, or with `ce` alone (the
paper's student without supervision).
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxser import losses
from jaxser.methods.common import ce  # noqa: F401  (a stage loss of this method)


def mlkd(student_out, teacher_out, batch, cfg):
  """Config keys: teacher (stage name), alpha, temperature, layer_map (pairs of teacher and
  student hidden-state indices, HF's order: 0 is the encoder input; empty: 2i -> i)."""
  teacher = teacher_out[cfg.teacher]
  student_hidden = jnp.moveaxis(student_out["hidden_states"], 1, 0)  # [L + 1, B, T, D]
  teacher_hidden = jnp.moveaxis(teacher["hidden_states"], 1, 0)
  layer_map = (tuple(tuple(p) for p in cfg.get("layer_map", ()))
               or losses.mlkd_layer_map(student_hidden.shape[0] - 1))
  return losses.mlkd_loss(student_out["logits"], teacher["logits"], batch["label"],
                          student_hidden, teacher_hidden, layer_map, alpha=cfg.alpha,
                          temperature=cfg.temperature, frame_mask=student_out["frame_mask"],
                          mask=batch["mask"])
