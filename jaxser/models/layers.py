"""Small layers shared by the CNN models, written for speed on XLA:CPU.

XLA's CPU convolution with `feature_group_count` (depthwise) was ~8x slower than
PyTorch's; a depthwise conv as a sum of k shifted, per-channel-scaled copies was faster
(DESIGN.md). Max-pooling is a max over strided slices with its own gradient (first maximum
of each window, as PyTorch): XLA's reduce_window gradient was the slow part of the CNN
steps, and autodiff through a chain of maxima split ties differently under sharding.
Adaptive average pooling follows PyTorch's AdaptiveAvgPool1d bins exactly.
"""

from __future__ import annotations

from functools import partial

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


def _window_offsets(window):
  """Every offset inside a window, in row-major order (PyTorch's scan order)."""
  return list(np.ndindex(*window))


def _strided(x, offset, strides, out):
  """x[:, o0::s0, o1::s1, ..., :] cut to the `out` pooled positions (one offset per window)."""
  start = (0,) + tuple(offset) + (0,)
  limit = (x.shape[0],) + tuple(o + s * (n - 1) + 1 for o, s, n in zip(offset, strides, out)) \
      + (x.shape[-1],)
  return jax.lax.slice(x, start, limit, (1,) + tuple(strides) + (1,))


def _pool_shape(x, window, strides):
  return tuple((t - w) // s + 1 for t, w, s in zip(x.shape[1:-1], window, strides))


def _max_pool_fwd(x, window, strides):
  out = _pool_shape(x, window, strides)
  best = arg = None
  for k, offset in enumerate(_window_offsets(window)):
    v = _strided(x, offset, strides, out)
    if best is None:
      best, arg = v, jnp.zeros(v.shape, jnp.int8 if np.prod(window) < 128 else jnp.int32)
    else:  # strictly greater: the first maximum wins ties, as in PyTorch
      take = v > best
      best, arg = jnp.where(take, v, best), jnp.where(take, jnp.asarray(k, arg.dtype), arg)
  return best, (arg, x.shape)


@partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def max_pool(x, window: tuple, strides: tuple):
  """Max-pool over the middle axes of [B, *spatial, C], no padding (PyTorch MaxPool semantics:
  floor, and the gradient goes to the first maximum of each window)."""
  return _max_pool_fwd(x, window, strides)[0]


def _max_pool_bwd(window, strides, res, g):
  # XLA:CPU's reduce_window gradient (select-and-scatter) was the slowest op of the LiteCNN
  # step; here each window offset sends its share back with one strided (interior) pad.
  arg, shape = res
  out = g.shape[1:-1]
  dx = jnp.zeros(shape, g.dtype)
  for k, offset in enumerate(_window_offsets(window)):
    pads = [(0, 0, 0)] + [(o, t - (o + s * (n - 1) + 1), s - 1)
                          for o, s, n, t in zip(offset, strides, out, shape[1:-1])] + [(0, 0, 0)]
    dx = dx + jax.lax.pad(jnp.where(arg == k, g, 0).astype(g.dtype), jnp.zeros((), g.dtype), pads)
  return (dx,)


max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


def max_pool1d(x, window: int, stride: int):
  """Max-pool over axis 1 of [B, T, C] with no padding (PyTorch MaxPool1d semantics)."""
  chex.assert_rank(x, 3)
  return max_pool(x, (window,), (stride,))


def max_pool2d(x, window: tuple, strides: tuple):
  """Max-pool over axes 1-2 of [B, H, W, C] with no padding (PyTorch MaxPool2d semantics)."""
  chex.assert_rank(x, 4)
  return max_pool(x, tuple(window), tuple(strides))


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
