"""A feed-forward classifier on fixed-size features (e.g. eGeMAPS functionals)."""

from __future__ import annotations

from typing import Sequence

import chex
import flax.linen as nn


class MLP(nn.Module):
  """Features [B, D] -> {'logits', 'embedding'}; input BatchNorm standardises each feature."""

  num_classes: int
  hidden: Sequence[int] = (128, 64)
  dropout: float = 0.3

  @nn.compact
  def __call__(self, x, length=None, *, train: bool = False):
    del length
    chex.assert_rank(x, 2)
    h = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name="input_bn")(x)
    for i, width in enumerate(self.hidden):
      h = nn.relu(nn.Dense(width, name=f"fc{i}")(h))
      h = nn.Dropout(self.dropout, deterministic=not train)(h)
    logits = nn.Dense(self.num_classes, name="out")(h)
    chex.assert_shape(logits, (x.shape[0], self.num_classes))
    return {"logits": logits, "embedding": h}
