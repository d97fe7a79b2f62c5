"""Small layers shared by the CNN models, written for speed on XLA:CPU.

XLA's CPU convolution with `feature_group_count` (depthwise) was ~8x slower than
PyTorch's; a depthwise conv as a sum of k shifted, per-channel-scaled copies and
max-pool as a max of strided slices were faster than PyTorch (DESIGN.md). Adaptive
average pooling follows PyTorch's AdaptiveAvgPool1d bins exactly.
"""

from __future__ import annotations

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


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
  """Max-pool over axis 1 of [B, T, C] with no padding (PyTorch MaxPool1d semantics).

  XLA's reduce_window: as fast here as a chain of maxima of strided slices, whose gradients
  under batch sharding differed from the 1-device ones by tens of percent.
  """
  return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, window, 1), (1, stride, 1), "VALID")


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


def adaptive_bins(length: int, out_length: int) -> tuple[np.ndarray, np.ndarray]:
  """PyTorch AdaptiveAvgPool1d bins of `length` frames into `out_length`: (start, end) per bin.

  Bin i covers frames [floor(i * T / L), ceil((i + 1) * T / L)).
  """
  i = np.arange(out_length)
  start = (i * length) // out_length
  end = -((-(i + 1) * length) // out_length)
  return start, end


def adaptive_avg_pool1d(x, out_length: int):
  """Average-pools axis 1 of [B, T, C] into `out_length` bins (PyTorch AdaptiveAvgPool1d).

  Every frame counts, padded ones included, as in PyTorch. `out_length` 1 is the global mean.
  """
  chex.assert_rank(x, 3)
  t = x.shape[1]
  if out_length < 1:
    raise ValueError(f"adaptive_avg_pool1d: out_length must be >= 1, got {out_length}")
  start, end = adaptive_bins(t, out_length)
  width = int((end - start).max())
  # Bins hold `width` or fewer frames: gather `width` frames per bin (static indices), weight
  # the frames beyond a bin's end by 0. O(L * width * C) work, as a pooling should cost, where
  # an [L, T] averaging matmul would add L * T * C multiply-adds to the model's MAC count.
  offsets = np.arange(width)
  index = np.minimum(start[:, None] + offsets[None, :], t - 1)
  weight = np.where(start[:, None] + offsets[None, :] < end[:, None],
                    1.0 / (end - start)[:, None], 0.0).astype(np.float32)
  frames = x[:, index.reshape(-1)].reshape(x.shape[0], out_length, width, x.shape[2])
  y = jnp.einsum("blwc,lw->blc", frames, jnp.asarray(weight, x.dtype))
  chex.assert_shape(y, (x.shape[0], out_length, x.shape[2]))
  return y
