"""LiteCNN (Pate & Vayeda 2025): a raw-waveform 1-D CNN student, ~1.08 M parameters.

Conv1d(k=80, s=2) + BN + ReLU -> three depthwise-separable blocks (depthwise conv,
1x1 pointwise conv, BN, ReLU, max-pool 3/2) -> adaptive average pooling to 64
positions -> flatten -> FC(128) + ReLU + dropout 0.2 -> FC(classes).

The paper says "global adaptive pooling"; the 1.08 M it reports comes from the
authors' code (shripadpate20/SpeechEmotionDistill, kd.py): AdaptiveAvgPool1d(64)
and a flattened 128 x 64 -> 128 FC that holds ~1.05 M of the parameters. So
`pool="adaptive_avg"` with `pool_length=64` is the default; `pool_length=1` is a
global mean. Channels-last [B, T, C] inside; the flatten is channel-major, as
PyTorch's flatten of [B, C, L], so `fc1` maps one to one onto a PyTorch Linear.
"""

from __future__ import annotations

from typing import Sequence

import chex
import flax.linen as nn

from jaxser.models import layers

POOLS = ("adaptive_avg", "mean", "masked_mean")


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
  """Waveform [B, S] (+ valid lengths) -> {'logits', 'embedding'}.

  `pool`: "adaptive_avg" (paper / authors' code: PyTorch AdaptiveAvgPool1d to
  `pool_length` positions over all frames, then flatten), "mean" (global mean over all
  frames) or "masked_mean" (mean over the frames that valid samples reach).
  """

  num_classes: int
  stem_features: int = 32
  stem_kernel: int = 80
  stem_stride: int = 2
  block_features: Sequence[int] = (64, 128, 128)
  block_kernel: int = 3
  pool: str = "adaptive_avg"
  pool_length: int = 64
  hidden: int = 128
  dropout: float = 0.2

  @nn.compact
  def __call__(self, x, length=None, *, train: bool = False):
    chex.assert_rank(x, 2)
    if self.pool not in POOLS:
      raise ValueError(f"LiteCNN pool={self.pool!r} is unknown; choose one of {POOLS}")
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
    if self.pool == "adaptive_avg":
      pooled = layers.adaptive_avg_pool1d(x, self.pool_length)
      pooled = pooled.transpose(0, 2, 1).reshape(x.shape[0], -1)  # [B, C * L], channel-major
    else:
      pooled = layers.masked_mean(x, length if self.pool == "masked_mean" else None)
    h = nn.relu(nn.Dense(self.hidden, name="fc1")(pooled))
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    logits = nn.Dense(self.num_classes, name="fc2")(h)
    chex.assert_shape(logits, (x.shape[0], self.num_classes))
    return {"logits": logits, "embedding": h}
