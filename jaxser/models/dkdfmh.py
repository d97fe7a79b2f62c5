"""DKDFMH (Zhao et al., ICASSP 2024): a CNN with head-fusion attention on log filterbanks.

Teacher and student of the DKDFMH method share this network. Input [B, T, F]: 40-band
log filterbanks (0.04 s window, 0.01 s hop) of a 2 s segment, T about 200, F = 40.

    conv1a (10, 2) | conv1b (2, 8)   two parallel first-layer convs, each + BN + ReLU,
                                     concatenated on channels (temporal | spectral texture)
    conv2 3x3 + BN + ReLU + max-pool 2x2
    conv3 3x3 + BN + ReLU + max-pool 2x2
    conv4 3x3 + BN + ReLU
    conv5 3x3 + BN + ReLU            -> the 80-channel map
    head-fusion attention            (left out with use_attention=False: the paper's "CNN" row)
    mean over valid time frames and all bands -> embedding -> FC -> logits

Readings where the DKDFMH paper is silent or ambiguous, all taken from the head-fusion
authors' code (github.com/lessonxmk/head_fusion, model.py, class MACNN), which DKDFMH's
description (kernels, pools, 80 channels, fused heads) matches layer for layer:

- "Five convolutional layers": the parallel pair counts as one layer (conv1), then conv2-5.
- Widths 8 + 8 -> 32 -> 48 -> 64 -> 80 (`branch_features`, `features`), as in MACNN.
- First-layer padding: (4, 0) for the (10, 2) kernel and (0, 3) for the (2, 8) kernel, so
  both give (T - 1) x (F - 1) maps; conv2-5 pad 1 ('SAME'); pools floor, as PyTorch's.
- Head fusion: per head h, 1x1 projections Q_h, K_h, V_h (80 -> `attention_hidden`, with
  bias); at every time-frequency point the attention is softmax over the hidden channels
  of Q_h * K_h (elementwise), times V_h. The code stacks the heads' ReLU'd maps and takes
  one global average, i.e. the heads are averaged point by point; we average them per
  point (after ReLU), then pool. No attention across positions, no output projection.
- Heads and hidden size: the paper gives neither; defaults 4 and 64 (MACNN's own defaults
  are 8 and 256; its train.py uses 2 and 392). The classifier is one Linear on the
  pooled `attention_hidden` vector (80 channels without attention). MACNN defines a
  dropout of 0.5 it never applies; `dropout` (default 0, i.e. none) is on the embedding.
- Convolutions carry no bias: BN follows each and removes it.
- `length` (valid input frames) masks the time pooling only: valid frames are T - 1 after
  conv1, floor-halved by each pool. Padded frames still reach BN statistics in training
  and neighbouring frames through the convs; 2 s segments are normally all valid.

Layout is channels-last: [B, T, F, C] inside, kernels (time, frequency). Max-pooling is
`layers.max_pool2d` (PyTorch's floor and first-maximum gradient, faster on XLA:CPU).
"""

from __future__ import annotations

from typing import Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxser.models import layers

# Frames (and bands) consumed by the first layer; then two 2x pools need 4 left.
_MIN_SIZE = 5


class HeadFusionAttention(nn.Module):
  """Head-fusion attention (Xu et al. 2021): [B, T, F, C] -> [B, T, F, hidden].

  Per head, softmax over channels of Q * K at each point, times V; ReLU; heads averaged.
  """

  heads: int
  hidden: int

  @nn.compact
  def __call__(self, x):
    chex.assert_rank(x, 4)
    shape = (self.heads, self.hidden)
    q = nn.DenseGeneral(shape, name="query")(x)  # [B, T, F, heads, hidden]
    k = nn.DenseGeneral(shape, name="key")(x)
    v = nn.DenseGeneral(shape, name="value")(x)
    out = nn.relu(jax.nn.softmax(q * k, axis=-1) * v).mean(axis=-2)
    chex.assert_shape(out, x.shape[:3] + (self.hidden,))
    return out


class DKDFMH(nn.Module):
  """Log filterbanks [B, T, F] (+ valid frames) -> {'logits', 'embedding'}."""

  num_classes: int
  use_attention: bool = True
  heads: int = 4
  attention_hidden: int = 64
  branch_features: int = 8
  features: Sequence[int] = (32, 48, 64, 80)
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x, length=None, *, train: bool = False):
    chex.assert_rank(x, 3)
    if len(self.features) != 4:
      raise ValueError(f"DKDFMH features={tuple(self.features)}: give 4 widths, for conv2-5")
    if min(x.shape[1:]) < _MIN_SIZE:
      raise ValueError(f"DKDFMH needs at least {_MIN_SIZE} frames and {_MIN_SIZE} bands, got "
                       f"input of shape {x.shape} [batch, frames, bands]; check the "
                       "stage's input settings (segment seconds, number of filterbanks)")
    if self.heads < 1 or self.attention_hidden < 1:
      raise ValueError(f"DKDFMH heads={self.heads}, attention_hidden={self.attention_hidden}: "
                       "both must be >= 1")

    def bn(y, name):
      return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                          name=name)(y)

    x = x[..., None]
    # Paddings (4, 0) and (0, 3) give both branches the same (T - 1) x (F - 1) map.
    xa = nn.Conv(self.branch_features, (10, 2), padding=((4, 4), (0, 0)), use_bias=False,
                 name="conv1a")(x)
    xb = nn.Conv(self.branch_features, (2, 8), padding=((0, 0), (3, 3)), use_bias=False,
                 name="conv1b")(x)
    x = jnp.concatenate([nn.relu(bn(xa, "bn1a")), nn.relu(bn(xb, "bn1b"))], axis=-1)
    self.sow("intermediates", "conv1", x)
    if length is not None:
      length = layers.pooled_lengths(length, 2, 1)
    for i, f in enumerate(self.features):
      x = nn.Conv(f, (3, 3), padding="SAME", use_bias=False, name=f"conv{i + 2}")(x)
      x = nn.relu(bn(x, f"bn{i + 2}"))
      if i < 2:  # after conv2 and conv3
        x = layers.max_pool2d(x, (2, 2), (2, 2))
        self.sow("intermediates", f"pool{i + 2}", x)
        if length is not None:
          length = layers.pooled_lengths(length, 2, 2)
    if self.use_attention:
      x = HeadFusionAttention(self.heads, self.attention_hidden, name="attention")(x)
    embedding = layers.masked_mean(x, length).mean(1)  # valid frames, then all bands
    h = nn.Dropout(self.dropout, deterministic=not train)(embedding)
    logits = nn.Dense(self.num_classes, name="fc")(h)
    chex.assert_shape(logits, (x.shape[0], self.num_classes))
    return {"logits": logits, "embedding": embedding}
