"""Flax BERT encoder (HF `BertModel`) with HuggingFace-mirroring parameter names.

Embeddings (word, absolute position, token type), post-LN layers and the tanh
pooler; flattened parameter paths joined by '.' are HF's state-dict keys modulo
the leaf renames kernel/scale/embedding -> weight (see `jaxser.models.pretrained`).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Mapping, Optional

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxser.models.hf_common import (activation_fn, attention_context, attention_probs,
                                      read_hf_config)

Array = jax.Array

_BERT_FIELDS = (
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
    "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
    "type_vocab_size", "layer_norm_eps", "pad_token_id")


@dataclasses.dataclass(frozen=True)
class BertConfig:
  """BERT shape; field names as in HF's config.json. Defaults = bert-base-uncased.

  `add_pooling_layer` is HF's `BertModel(config, add_pooling_layer=...)` argument.
  """

  vocab_size: int = 30522
  hidden_size: int = 768
  num_hidden_layers: int = 12
  num_attention_heads: int = 12
  intermediate_size: int = 3072
  hidden_act: str = "gelu"
  hidden_dropout_prob: float = 0.1
  attention_probs_dropout_prob: float = 0.1
  max_position_embeddings: int = 512
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12
  pad_token_id: int = 0
  add_pooling_layer: bool = True

  def __post_init__(self):
    if self.hidden_size % self.num_attention_heads:
      raise ValueError(f"BertConfig: hidden_size {self.hidden_size} is not divisible by "
                       f"num_attention_heads {self.num_attention_heads}")
    activation_fn(self.hidden_act)

  def replace(self, **changes) -> BertConfig:
    return dataclasses.replace(self, **changes)

  @classmethod
  def from_hf(cls, config: Mapping[str, Any] | str | os.PathLike) -> BertConfig:
    """Our config from an HF config dict, a config.json path or a model directory."""
    config, source = read_hf_config(config)
    model_type = config.get("model_type", "bert")
    if model_type != "bert":
      raise ValueError(f"{source}: model_type={model_type!r} is not a BERT encoder")
    pos = config.get("position_embedding_type", "absolute")
    if pos != "absolute":
      raise ValueError(f"{source}: position_embedding_type={pos!r} is not supported (only "
                       "'absolute')")
    if config.get("is_decoder") or config.get("add_cross_attention"):
      raise ValueError(f"{source}: decoder / cross-attention BERT is not supported")
    kwargs = {k: config[k] for k in _BERT_FIELDS if k in config}
    if kwargs.get("pad_token_id") is None:
      kwargs["pad_token_id"] = 0
    return cls(**kwargs)

  def to_hf(self) -> dict[str, Any]:
    """An HF config.json dict that builds the same `BertModel`."""
    out = {k: getattr(self, k) for k in _BERT_FIELDS}
    out.update(model_type="bert", architectures=["BertModel"],
               position_embedding_type="absolute")
    return out


PRESETS: dict[str, BertConfig] = {
    "bert-base-uncased": BertConfig(),
    "all-MiniLM-L6-v2": BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                                   intermediate_size=1536),
    "tiny-bert": BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                            num_attention_heads=4, intermediate_size=64,
                            max_position_embeddings=64),
}


def _dense(features: int, dtype, name: str):
  return nn.Dense(features, dtype=dtype, kernel_init=nn.initializers.normal(0.02), name=name)


def _layer_norm(config: BertConfig, dtype, name: str = "LayerNorm"):
  return nn.LayerNorm(epsilon=config.layer_norm_eps, use_fast_variance=False, dtype=dtype,
                      name=name)


class Embeddings(nn.Module):
  config: BertConfig
  dtype: Any = jnp.float32
  deterministic: bool = True

  @nn.compact
  def __call__(self, input_ids, token_type_ids, position_ids):
    cfg = self.config
    embed = functools.partial(nn.Embed, features=cfg.hidden_size, dtype=self.dtype,
                              embedding_init=nn.initializers.normal(0.02))
    x = embed(cfg.vocab_size, name="word_embeddings")(input_ids)
    x = x + embed(cfg.type_vocab_size, name="token_type_embeddings")(token_type_ids)
    x = x + embed(cfg.max_position_embeddings, name="position_embeddings")(position_ids)
    x = _layer_norm(cfg, self.dtype)(x)
    return nn.Dropout(cfg.hidden_dropout_prob)(x, deterministic=self.deterministic)


class SelfAttention(nn.Module):
  config: BertConfig
  dtype: Any = jnp.float32
  deterministic: bool = True

  @nn.compact
  def __call__(self, x: Array, key_mask: Optional[Array]) -> Array:
    cfg = self.config
    heads = cfg.num_attention_heads
    head_dim = cfg.hidden_size // heads
    split = lambda t: t.reshape(t.shape[:-1] + (heads, head_dim))
    q = split(_dense(cfg.hidden_size, self.dtype, "query")(x))
    k = split(_dense(cfg.hidden_size, self.dtype, "key")(x))
    v = split(_dense(cfg.hidden_size, self.dtype, "value")(x))
    probs = attention_probs(q, k, key_mask, head_dim ** -0.5)
    probs = nn.Dropout(cfg.attention_probs_dropout_prob)(probs, deterministic=self.deterministic)
    out = attention_context(probs.astype(self.dtype), v)
    return out.reshape(out.shape[:-2] + (cfg.hidden_size,))


class AddNorm(nn.Module):
  """HF's BertSelfOutput / BertOutput: dense -> dropout -> LayerNorm(x + residual)."""

  config: BertConfig
  dtype: Any = jnp.float32
  deterministic: bool = True

  @nn.compact
  def __call__(self, x: Array, residual: Array) -> Array:
    cfg = self.config
    x = _dense(cfg.hidden_size, self.dtype, "dense")(x)
    x = nn.Dropout(cfg.hidden_dropout_prob)(x, deterministic=self.deterministic)
    return _layer_norm(cfg, self.dtype)(x + residual)


class BertAttention(nn.Module):
  config: BertConfig
  dtype: Any = jnp.float32
  deterministic: bool = True

  @nn.compact
  def __call__(self, x: Array, key_mask: Optional[Array]) -> Array:
    a = SelfAttention(self.config, self.dtype, self.deterministic, name="self")(x, key_mask)
    return AddNorm(self.config, self.dtype, self.deterministic, name="output")(a, x)


class Intermediate(nn.Module):
  config: BertConfig
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    x = _dense(self.config.intermediate_size, self.dtype, "dense")(x)
    return activation_fn(self.config.hidden_act)(x)


class BertLayer(nn.Module):
  config: BertConfig
  dtype: Any = jnp.float32
  deterministic: bool = True

  @nn.compact
  def __call__(self, h: Array, key_mask: Optional[Array]) -> Array:
    a = BertAttention(self.config, self.dtype, self.deterministic, name="attention")(h, key_mask)
    i = Intermediate(self.config, self.dtype, name="intermediate")(a)
    return AddNorm(self.config, self.dtype, self.deterministic, name="output")(i, a)


class LayerStack(nn.Module):
  config: BertConfig
  dtype: Any = jnp.float32
  deterministic: bool = True
  remat: bool = False

  @nn.compact
  def __call__(self, h: Array, key_mask: Optional[Array]) -> list[Array]:
    layer_cls = nn.remat(BertLayer) if self.remat else BertLayer
    states = [h]
    for i in range(self.config.num_hidden_layers):
      h = layer_cls(self.config, self.dtype, self.deterministic, name=str(i))(h, key_mask)
      states.append(h)
    return states


class Encoder(nn.Module):
  config: BertConfig
  dtype: Any = jnp.float32
  deterministic: bool = True
  remat: bool = False

  @nn.compact
  def __call__(self, h: Array, key_mask: Optional[Array]) -> list[Array]:
    return LayerStack(self.config, self.dtype, self.deterministic, self.remat,
                      name="layer")(h, key_mask)


class Pooler(nn.Module):
  config: BertConfig
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, h: Array) -> Array:
    return jnp.tanh(_dense(self.config.hidden_size, self.dtype, "dense")(h[:, 0]))


class BertModel(nn.Module):
  """BERT encoder (HF `BertModel`).

  `apply(variables, input_ids [B, L], attention_mask=None|[B, L] (1 = token),
  token_type_ids=None, position_ids=None, train=False)` returns a dict with
  `last_hidden_state` [B, L, D], `hidden_states` (L + 1 arrays, index 0 = embeddings)
  and `pooler_output` [B, D] (None when `config.add_pooling_layer` is False).
  """

  config: BertConfig
  dtype: Any = jnp.float32
  remat: bool = False

  @nn.compact
  def __call__(self, input_ids: Array, attention_mask: Optional[Array] = None,
               token_type_ids: Optional[Array] = None, position_ids: Optional[Array] = None,
               train: bool = False) -> dict[str, Any]:
    cfg = self.config
    chex.assert_rank(input_ids, 2)
    batch, length = input_ids.shape
    if length > cfg.max_position_embeddings:
      raise ValueError(f"BertModel: {length} tokens exceed max_position_embeddings="
                       f"{cfg.max_position_embeddings}; truncate the tokenised input")
    if token_type_ids is None:
      token_type_ids = jnp.zeros_like(input_ids)
    if position_ids is None:
      position_ids = jnp.broadcast_to(jnp.arange(length), (batch, length))
    key_mask = None
    if attention_mask is not None:
      chex.assert_shape(attention_mask, (batch, length))
      key_mask = attention_mask.astype(bool)
    h = Embeddings(cfg, self.dtype, not train, name="embeddings")(input_ids, token_type_ids,
                                                                  position_ids)
    states = Encoder(cfg, self.dtype, not train, self.remat, name="encoder")(h, key_mask)
    pooled = Pooler(cfg, self.dtype, name="pooler")(states[-1]) if cfg.add_pooling_layer else None
    return {"last_hidden_state": states[-1], "hidden_states": tuple(states),
            "pooler_output": pooled}


def init_variables(config: BertConfig, rng: Array, **module_kwargs):
  """Random variables for `BertModel(config)`."""
  return jax.jit(BertModel(config, **module_kwargs).init)(rng, jnp.zeros((1, 2), jnp.int32))


def count_params(config: BertConfig) -> int:
  """Parameter count, computed from shapes only (no weights materialised)."""
  shapes = jax.eval_shape(lambda: init_variables(config, jax.random.key(0)))
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(shapes)))
