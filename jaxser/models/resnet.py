"""ProsodicResNet: EmoDistill's prosodic teacher, a 2-D ResNet on eGeMAPS low-level descriptors.

Input: LLD frames [B, T, F] (opensmile eGeMAPS LLDs: F = 25 at a 10 ms hop) seen as a
1-channel image. Optional input BatchNorm per descriptor (their scales differ by orders
of magnitude) -> 3x3 stem conv + BN + ReLU -> four basic residual blocks (two 3x3 convs
with BN; 1x1 conv + BN shortcut when the shape changes; stride 2 in blocks 2-4) -> mean
over valid frames and all descriptors -> FC embedding + ReLU -> dropout -> FC classes.

Padding is exact: frames past `length` are zeroed after every layer and left out of
every BatchNorm's batch statistics, so an utterance's output does not depend on how
much padding its batch carries. Convs pad one zero each side as PyTorch's ResNet does
(XLA's 'SAME' pads stride-2 convs on one side only).
"""

from __future__ import annotations

from typing import Optional, Sequence

import chex
import flax.linen as nn
import jax.numpy as jnp

from jaxser.models import layers


def _frame_mask(length, num_frames: int, batch: int):
  """[B, T] bool, True on valid frames (all frames if `length` is None)."""
  if length is None:
    return jnp.ones((batch, num_frames), bool)
  return jnp.arange(num_frames)[None, :] < length[:, None]


def _bn(train: bool, name: str):
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name=name)


def _conv(features: int, kernel: int, stride: int, name: str):
  pad = kernel // 2
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                 padding=((pad, pad), (pad, pad)), use_bias=False,
                 kernel_init=nn.initializers.variance_scaling(2.0, "fan_out", "normal"), name=name)


class BasicBlock(nn.Module):
  """conv3x3(stride) -> BN -> ReLU -> conv3x3 -> BN, + shortcut, ReLU; x [B, T, F, C]."""

  features: int
  stride: int = 1

  @nn.compact
  def __call__(self, x, length, train: bool):
    # The time axis shrinks like a 3-tap conv with padding 1 (ceil(T / stride)); the 1x1
    # shortcut (padding 0) gives the same count.
    out_length = layers.pooled_lengths(length, 3, self.stride, padding=1)
    h = _conv(self.features, 3, self.stride, "conv1")(x)
    mask = _frame_mask(out_length, h.shape[1], h.shape[0])[:, :, None, None]
    h = nn.relu(_bn(train, "bn1")(h, mask=mask)) * mask
    h = _conv(self.features, 3, 1, "conv2")(h)
    h = _bn(train, "bn2")(h, mask=mask)
    if self.stride != 1 or x.shape[-1] != self.features:
      shortcut = _conv(self.features, 1, self.stride, "shortcut_conv")(x)
      shortcut = _bn(train, "shortcut_bn")(shortcut, mask=mask)
    else:
      shortcut = x
    chex.assert_equal_shape([h, shortcut])
    return nn.relu(h + shortcut) * mask, out_length


class ProsodicResNet(nn.Module):
  """LLD frames [B, T, F] (+ valid frames [B]) -> {'logits', 'embedding' [B, embedding_dim]}.

  `widths`: channels of the four residual blocks (the stem has widths[0]); block i > 0
  halves time and descriptor axes. `input_norm`: BatchNorm per descriptor on the input.
  """

  num_classes: int
  widths: Sequence[int] = (16, 32, 64, 128)
  embedding_dim: int = 128
  dropout: float = 0.2
  input_norm: bool = True

  @nn.compact
  def __call__(self, x, length: Optional[jnp.ndarray] = None, *, train: bool = False):
    chex.assert_rank(x, 3)
    if len(self.widths) < 1:
      raise ValueError("ProsodicResNet: widths must name at least one block's channels")
    batch, frames, _ = x.shape
    if length is not None:
      length = jnp.asarray(length, jnp.int32)
      chex.assert_shape(length, (batch,))
    mask = _frame_mask(length, frames, batch)
    x = jnp.where(mask[..., None], x, 0.0)
    if self.input_norm:
      x = _bn(train, "input_bn")(x, mask=mask[..., None]) * mask[..., None]
    h = _conv(self.widths[0], 3, 1, "stem_conv")(x[..., None])
    h = nn.relu(_bn(train, "stem_bn")(h, mask=mask[:, :, None, None])) * mask[:, :, None, None]
    valid = length if length is not None else jnp.full((batch,), frames, jnp.int32)
    for i, width in enumerate(self.widths):
      h, valid = BasicBlock(width, 1 if i == 0 else 2, name=f"block{i}")(h, valid, train)
    pooled = layers.masked_mean(h.mean(axis=2), valid)  # over descriptors, then valid frames
    emb = nn.relu(nn.Dense(self.embedding_dim, name="fc_embedding")(pooled))
    h = nn.Dropout(self.dropout, deterministic=not train)(emb)
    logits = nn.Dense(self.num_classes, name="classifier")(h)
    chex.assert_shape(emb, (batch, self.embedding_dim))
    chex.assert_shape(logits, (batch, self.num_classes))
    return {"logits": logits, "embedding": emb}
