"""Small layers shared by the CNN models, written for speed on XLA:CPU.

XLA's CPU convolution with `feature_group_count` (depthwise) was ~8x slower than
PyTorch's; a depthwise conv as a sum of k shifted, per-channel-scaled copies and
max-pool as a max of strided slices were faster than PyTorch (DESIGN.md).
"""

from __future__ import annotations

import chex
import flax.linen as nn
import jax.numpy as jnp


class DepthwiseConv1D(nn.Module):
  """Depthwise 1-D conv over [B, T, C] with 'SAME' zero padding (odd kernel) and bias."""

  kernel_size: int
  use_bias: bool = True

  @nn.compact
  def __call__(self, x):
    chex.assert_rank(x, 3)
    k, c = self.kernel_size, x.shape[-1]
    if k % 2 != 1:
      raise ValueError(f"DepthwiseConv1D needs an odd kernel, got {k}")
    # Same shape as nn.Conv(feature_group_count=c) so the two are interchangeable.
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, 1, c))
    xp = jnp.pad(x, ((0, 0), (k // 2, k // 2), (0, 0)))
    t = x.shape[1]
    y = sum(xp[:, j:j + t, :] * kernel[j, 0] for j in range(k))
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (c,))
    return y


def max_pool1d(x, window: int, stride: int):
  """Max-pool over axis 1 of [B, T, C] with no padding (PyTorch MaxPool1d semantics)."""
  n = (x.shape[1] - window) // stride + 1
  # A chain of pairwise maxima: its backward ran 3x faster on XLA:CPU than max over a stack.
  y = x[:, 0:stride * (n - 1) + 1:stride]
  for j in range(1, window):
    y = jnp.maximum(y, x[:, j:j + stride * (n - 1) + 1:stride])
  return y


def pooled_lengths(length, window: int, stride: int, padding: int = 0):
  """Valid output frames of a conv/pool over `length` valid input frames."""
  return jnp.maximum((length + 2 * padding - window) // stride + 1, 0)


def masked_mean(x, length):
  """Mean of [B, T, ...] over the first `length[b]` steps of axis 1 (all steps if None)."""
  if length is None:
    return x.mean(1)
  t = jnp.arange(x.shape[1])
  m = (t[None, :] < length[:, None]).astype(x.dtype)
  m = m.reshape(m.shape + (1,) * (x.ndim - 2))
  return (x * m).sum(1) / jnp.maximum(m.sum(1), 1.0)
