"""LiteCNN (Pate & Vayeda 2025): a raw-waveform 1-D CNN student.

Conv1d(k=80, s=2) + BN + ReLU -> depthwise-separable blocks (depthwise conv,
1x1 pointwise conv, BN, ReLU, max-pool 3/2) -> global pooling -> FC + ReLU +
dropout -> FC. Channels-last [B, T, C] throughout.
"""

from __future__ import annotations

from typing import Sequence

import chex
import flax.linen as nn
import jax.numpy as jnp

from jaxser.models import layers


class DSBlock(nn.Module):
  """Depthwise conv -> pointwise conv -> BN -> ReLU -> max-pool(3, 2)."""

  features: int
  kernel_size: int

  @nn.compact
  def __call__(self, x, train: bool):
    # No biases before BN: BN removes them, and their exactly-zero gradients would only feed
    # rounding noise into Adam.
    x = layers.DepthwiseConv1D(self.kernel_size, use_bias=False, name="depthwise")(x)
    x = nn.Dense(self.features, use_bias=False, name="pointwise")(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name="bn")(x)
    return layers.max_pool1d(nn.relu(x), 3, 2)


class LiteCNN(nn.Module):
  """Waveform [B, S] (+ valid lengths) -> {'logits', 'embedding'}."""

  num_classes: int
  stem_features: int = 64
  stem_kernel: int = 80
  stem_stride: int = 2
  block_features: Sequence[int] = (128, 256, 512)
  block_kernel: int = 3
  hidden: int = 256
  dropout: float = 0.2
  pool: str = "mean"  # "mean" over all frames (paper) or "masked_mean" over valid frames

  @nn.compact
  def __call__(self, x, length=None, *, train: bool = False):
    chex.assert_rank(x, 2)
    x = x[..., None]
    x = nn.Conv(self.stem_features, (self.stem_kernel,), strides=(self.stem_stride,),
                padding="VALID", use_bias=False, name="stem")(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name="stem_bn")(x)
    x = nn.relu(x)
    if length is not None:
      length = layers.pooled_lengths(length, self.stem_kernel, self.stem_stride)
    for i, f in enumerate(self.block_features):
      x = DSBlock(f, self.block_kernel, name=f"block{i}")(x, train)
      if length is not None:
        length = layers.pooled_lengths(length, 3, 2)
    pooled = layers.masked_mean(x, length if self.pool == "masked_mean" else None)
    h = nn.relu(nn.Dense(self.hidden, name="fc1")(pooled))
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    logits = nn.Dense(self.num_classes, name="fc2")(h)
    chex.assert_shape(logits, (x.shape[0], self.num_classes))
    return {"logits": logits, "embedding": h}
