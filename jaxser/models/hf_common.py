"""Pieces the HF-mirroring encoders share: activations, attention weights, config reading."""

from __future__ import annotations

import functools
import json
import os
from typing import Any, Mapping, Optional

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


def attention_probs(q: Array, k: Array, key_mask: Optional[Array], scale: float) -> Array:
  """Softmax attention weights [B, H, Tq, Tk] of q, k [B, T, H, d]; masked keys get 0.

  Float32 (float64 for float64 inputs, as parity tests run them) whatever the input dtype.
  """
  dtype = jnp.promote_types(q.dtype, jnp.float32)
  scores = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=dtype) * scale
  if key_mask is not None:
    scores = jnp.where(key_mask[:, None, None, :], scores, jnp.finfo(dtype).min)
  return jax.nn.softmax(scores, axis=-1)


def read_hf_config(config: Mapping[str, Any] | str | os.PathLike) -> tuple[dict, str]:
  """(config dict, where it came from) of an HF config dict, config.json path or model directory."""
  if isinstance(config, Mapping):
    return dict(config), "config dict"
  path = os.fspath(config)
  if os.path.isdir(path):
    path = os.path.join(path, "config.json")
  with open(path) as f:
    return json.load(f), path
