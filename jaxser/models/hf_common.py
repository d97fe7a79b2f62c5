"""Pieces the HF-mirroring encoders share: activations, attention weights, config reading."""

from __future__ import annotations

import functools
import json
import os
from typing import Any, Mapping, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array

_ACTIVATIONS = {
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
    "gelu_new": functools.partial(jax.nn.gelu, approximate=True),
    "gelu_pytorch_tanh": functools.partial(jax.nn.gelu, approximate=True),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "tanh": jnp.tanh,
}


def activation_fn(name: str):
  """The activation HF calls `name` (ACT2FN), e.g. 'gelu' is the exact erf GELU."""
  if name not in _ACTIVATIONS:
    raise ValueError(f"activation {name!r} (config hidden_act / feat_extract_activation) is not "
                     f"supported; use one of {sorted(_ACTIVATIONS)}")
  return _ACTIVATIONS[name]


def _heads_first(t: Array) -> Array:
  """[B, T, H, d] -> [B, H, T, d]."""
  return jnp.swapaxes(t, 1, 2)


def attention_context(probs: Array, v: Array) -> Array:
  """probs [B, H, Tq, Tk] x v [B, Tk, H, d] -> [B, Tq, H, d]."""
  return jnp.swapaxes(jnp.matmul(probs, _heads_first(v)), 1, 2)


def attention_probs(q: Array, k: Array, key_mask: Optional[Array], scale: float) -> Array:
  """Softmax attention weights [B, H, Tq, Tk] of q, k [B, T, H, d]; masked keys get 0.

  Float32 (float64 for float64 inputs, as parity tests run them) whatever the input dtype.
  """
  dtype = jnp.promote_types(q.dtype, jnp.float32)
  # Heads first, then a plain batched matmul: XLA:CPU ran "bqhd,bkhd->bhqk" directly at half
  # the speed (Whisper's 1500-frame attention: 119 -> 61 ms per layer).
  scores = jnp.matmul(_heads_first(q), jnp.swapaxes(_heads_first(k), -1, -2),
                      preferred_element_type=dtype) * scale
  if key_mask is not None:
    scores = jnp.where(key_mask[:, None, None, :], scores, jnp.finfo(dtype).min)
  return jax.nn.softmax(scores, axis=-1)


def self_attention(x: Array, key_mask: Optional[Array], *, hidden: int, heads: int,
                   dropout: float, deterministic: bool, dtype, kernel_init,
                   key_bias: bool = True) -> Array:
  """HF's q_proj / k_proj / v_proj / out_proj self-attention, called inside a module's compact
  method (the projections become that module's submodules)."""
  head_dim = hidden // heads
  dense = functools.partial(nn.Dense, hidden, dtype=dtype, kernel_init=kernel_init)
  split = lambda t: t.reshape(t.shape[:-1] + (heads, head_dim))
  q = split(dense(name="q_proj")(x))
  k = split(dense(use_bias=key_bias, name="k_proj")(x))
  v = split(dense(name="v_proj")(x))
  probs = attention_probs(q, k, key_mask, head_dim ** -0.5)
  probs = nn.Dropout(dropout)(probs, deterministic=deterministic)
  out = attention_context(probs.astype(dtype), v)
  return dense(name="out_proj")(out.reshape(out.shape[:-2] + (hidden,)))


def read_hf_config(config: Mapping[str, Any] | str | os.PathLike) -> tuple[dict, str]:
  """(config dict, where it came from) of an HF config dict, config.json path or model directory."""
  if isinstance(config, Mapping):
    return dict(config), "config dict"
  path = os.fspath(config)
  if os.path.isdir(path):
    path = os.path.join(path, "config.json")
  with open(path) as f:
    return json.load(f), path


class LayerStack(nn.Module):
  """HF's `layers.<i>`: `num_layers` x `layer_cls(config, dtype, deterministic)`, with
  LayerDrop and optional remat; returns [input, out_1, ..., out_L] (HF's hidden_states).
  `first` names the layers from `layers.<first>` (the top of a stack whose lower layers
  ran elsewhere, e.g. frozen and cached)."""

  layer_cls: Any
  config: Any
  num_layers: int
  layerdrop: float = 0.0
  dtype: Any = jnp.float32
  deterministic: bool = True
  remat: bool = False
  first: int = 0

  @nn.compact
  def __call__(self, h: Array, key_mask: Optional[Array]) -> list[Array]:
    layer_cls = nn.remat(self.layer_cls) if self.remat else self.layer_cls
    states = [h]
    for i in range(self.first, self.first + self.num_layers):
      out = layer_cls(self.config, self.dtype, self.deterministic, name=str(i))(h, key_mask)
      if not self.deterministic and self.layerdrop > 0.0:
        # LayerDrop keeps shapes static: the layer runs, its output is dropped.
        skip = jax.random.uniform(self.make_rng("dropout")) < self.layerdrop
        out = jnp.where(skip, h, out)
      h = out
      states.append(h)
    return states
