"""A compact 2-D CNN on log-filterbank frames: the quickstart's teacher."""

from __future__ import annotations

from typing import Sequence

import chex
import flax.linen as nn

from jaxser.models import layers


class SpectralCNN(nn.Module):
  """Features [B, T, F] (+ valid frames) -> {'logits', 'embedding'}.

  Conv3x3 + BN + ReLU + max-pool 2x2 per stage, then a time-masked mean and
  frequency mean, FC + ReLU + dropout, FC.
  """

  num_classes: int
  features: Sequence[int] = (32, 64, 96)
  hidden: int = 128
  dropout: float = 0.3

  @nn.compact
  def __call__(self, x, length=None, *, train: bool = False):
    chex.assert_rank(x, 3)
    # Learned global normalisation of each band: per-utterance normalisation would erase
    # loudness, one of the strongest emotion cues.
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                     name="input_bn")(x)[..., None]
    for i, f in enumerate(self.features):
      x = nn.Conv(f, (3, 3), padding="SAME", use_bias=False, name=f"conv{i}")(x)
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                       name=f"bn{i}")(x)
      x = layers.max_pool2d(nn.relu(x), (2, 2), (2, 2))
      if length is not None:
        length = layers.pooled_lengths(length, 2, 2)
    pooled = layers.masked_mean(x.mean(2), length)
    h = nn.relu(nn.Dense(self.hidden, name="fc1")(pooled))
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    logits = nn.Dense(self.num_classes, name="fc2")(h)
    chex.assert_shape(logits, (x.shape[0], self.num_classes))
    return {"logits": logits, "embedding": h}
