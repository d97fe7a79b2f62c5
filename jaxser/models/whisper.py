"""Flax Whisper encoder with HuggingFace-mirroring parameter names (HF `WhisperEncoder`).

log-mel [B, T, n_mels] -> conv1 (k 3) GELU -> conv2 (k 3, stride 2) GELU -> + sinusoidal
positions (frozen, as HF's `requires_grad_(False)`) -> pre-LN transformer layers -> final
layer norm. T is 3000 frames in Whisper's own convention (30 s of audio, zero-padded), or
any length up to that with the positions sliced to the frames present (HF accepts only
3000). Flattened parameter paths joined by '.' are HF's state-dict keys modulo the leaf
renames of `jaxser.models.pretrained` (kernel/scale/embedding -> weight, transposed kernels).
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

from jaxser.models.hf_common import (LayerStack, activation_fn, read_hf_config,
                                     self_attention)

Array = jax.Array

_FIELDS = ("d_model", "encoder_layers", "encoder_attention_heads", "encoder_ffn_dim",
           "num_mel_bins", "max_source_positions", "activation_function", "dropout",
           "attention_dropout", "activation_dropout", "encoder_layerdrop")


@dataclasses.dataclass(frozen=True)
class WhisperConfig:
  """Encoder shape and regularisation; field names as in HF's WhisperConfig. Defaults: base."""

  d_model: int = 512
  encoder_layers: int = 6
  encoder_attention_heads: int = 8
  encoder_ffn_dim: int = 2048
  num_mel_bins: int = 80
  max_source_positions: int = 1500
  activation_function: str = "gelu"
  dropout: float = 0.0
  attention_dropout: float = 0.0
  activation_dropout: float = 0.0
  encoder_layerdrop: float = 0.0

  def __post_init__(self):
    if self.d_model % self.encoder_attention_heads:
      raise ValueError(f"WhisperConfig: d_model {self.d_model} is not divisible by "
                       f"encoder_attention_heads {self.encoder_attention_heads}")
    if self.d_model % 2:
      raise ValueError(f"WhisperConfig: d_model {self.d_model} must be even (sinusoids)")
    activation_fn(self.activation_function)

  @property
  def max_mel_frames(self) -> int:
    return 2 * self.max_source_positions

  @property
  def num_hidden_layers(self) -> int:
    """The layer count under the name the wav2vec2 / BERT configs give it."""
    return self.encoder_layers

  def replace(self, **changes) -> WhisperConfig:
    return dataclasses.replace(self, **changes)

  @classmethod
  def from_hf(cls, config: Mapping[str, Any] | str | os.PathLike) -> WhisperConfig:
    """Our config from an HF WhisperConfig dict, config.json path or model directory."""
    config, source = read_hf_config(config)
    if config.get("model_type", "whisper") != "whisper":
      raise ValueError(f"{source}: model_type={config['model_type']!r} is not 'whisper'")
    if config.get("scale_embedding", False):
      raise ValueError(f"{source}: scale_embedding=True is not supported (Whisper has none)")
    return cls(**{k: config[k] for k in _FIELDS if k in config})

  def to_hf(self) -> dict[str, Any]:
    """HF config.json fields (encoder part; the decoder keeps HF's defaults)."""
    return {"model_type": "whisper", **{k: getattr(self, k) for k in _FIELDS}}


PRESETS = {
    "whisper-base": WhisperConfig(),
    "whisper-tiny": WhisperConfig(d_model=384, encoder_layers=4, encoder_attention_heads=6,
                                  encoder_ffn_dim=1536),
    "tiny-whisper": WhisperConfig(d_model=32, encoder_layers=2, encoder_attention_heads=2,
                                  encoder_ffn_dim=64, num_mel_bins=80, max_source_positions=1500),
}


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> np.ndarray:
  """Whisper's positional table [length, channels]: sin of every timescale, then cos."""
  log_increment = np.log(max_timescale) / (channels // 2 - 1)
  inv = np.exp(-log_increment * np.arange(channels // 2))
  t = np.arange(length)[:, None] * inv[None, :]
  return np.concatenate([np.sin(t), np.cos(t)], axis=1).astype(np.float32)


def encoder_frames(mel_frames):
  """Encoder frames of `mel_frames` log-mel frames (conv2: kernel 3, stride 2, padding 1)."""
  return (mel_frames - 1) // 2 + 1


_INIT = nn.initializers.normal(0.02)  # HF's init_std


def _dense(features, name, dtype=jnp.float32):
  return nn.Dense(features, dtype=dtype, kernel_init=_INIT, name=name)


class Positions(nn.Module):
  """HF's `embed_positions` table; gives the first `t` rows, with no gradient."""

  config: WhisperConfig

  @nn.compact
  def __call__(self, t: int) -> Array:
    cfg = self.config
    table = self.param("embedding", lambda _, shape: jnp.asarray(sinusoids(*shape)),
                       (cfg.max_source_positions, cfg.d_model))
    return jax.lax.stop_gradient(table[:t])


class Attention(nn.Module):
  """Multi-head self-attention; `k_proj` has no bias, as in Whisper."""

  config: WhisperConfig
  dtype: Any = jnp.float32
  deterministic: bool = True

  @nn.compact
  def __call__(self, x: Array, key_mask: Optional[Array]) -> Array:
    cfg = self.config
    return self_attention(x, key_mask, hidden=cfg.d_model, heads=cfg.encoder_attention_heads,
                          dropout=cfg.attention_dropout, deterministic=self.deterministic,
                          dtype=self.dtype, kernel_init=_INIT, key_bias=False)


class EncoderLayer(nn.Module):
  """Pre-LN transformer layer: x + attn(LN(x)), then x + fc2(act(fc1(LN(x))))."""

  config: WhisperConfig
  dtype: Any = jnp.float32
  deterministic: bool = True

  @nn.compact
  def __call__(self, h: Array, key_mask: Optional[Array]) -> Array:
    cfg = self.config
    det = self.deterministic
    ln = functools.partial(nn.LayerNorm, epsilon=1e-5, use_fast_variance=False, dtype=self.dtype)
    drop = nn.Dropout(cfg.dropout)
    a = Attention(cfg, self.dtype, det, name="self_attn")(ln(name="self_attn_layer_norm")(h),
                                                          key_mask)
    h = h + drop(a, deterministic=det)
    f = activation_fn(cfg.activation_function)(
        _dense(cfg.encoder_ffn_dim, "fc1", dtype=self.dtype)(ln(name="final_layer_norm")(h)))
    f = nn.Dropout(cfg.activation_dropout)(f, deterministic=det)
    f = _dense(cfg.d_model, "fc2", dtype=self.dtype)(f)
    return h + drop(f, deterministic=det)


class WhisperEncoder(nn.Module):
  """HF `WhisperEncoder`: log-mel [B, T, n_mels] (+ valid mel frames) -> hidden states.

  Returns `last_hidden_state` [B, T', D] (after the final layer norm), `hidden_states`
  (L + 1 arrays in HF's order: the input of each layer, then the last output after the
  final layer norm, as transformers returns them), `frame_mask` [B, T'] (True = valid).
  `lengths` mask padded frames out of attention; leave it None for Whisper's own 30 s
  convention, where the zero-padded tail is content that every frame attends to.
  `first_layer=k` is the top of the encoder alone: its input is the hidden state entering
  layer k [B, T', D] (what `features.encoder_layers.layer_states` caches) with `lengths`
  in encoder frames; it has layers k..L-1 under their own names and returns the L - k + 1
  states from layer k's input on.
  """

  config: WhisperConfig
  dtype: Any = jnp.float32
  remat: bool = False
  first_layer: int = 0

  @nn.compact
  def __call__(self, mel: Array, lengths: Optional[Array] = None,
               train: bool = False) -> dict[str, Any]:
    cfg = self.config
    if not 0 <= self.first_layer <= cfg.encoder_layers:
      raise ValueError(f"WhisperEncoder: first_layer={self.first_layer}; the encoder has "
                       f"layers 0-{cfg.encoder_layers - 1}")
    h, frame_mask = (self.embed(mel, lengths, train) if not self.first_layer
                     else self.entering(mel, lengths))
    key_mask = None if lengths is None else frame_mask
    states = LayerStack(EncoderLayer, cfg, cfg.encoder_layers - self.first_layer,
                        cfg.encoder_layerdrop, self.dtype, not train, self.remat,
                        first=self.first_layer, name="layers")(h, key_mask)
    last = nn.LayerNorm(epsilon=1e-5, use_fast_variance=False, dtype=self.dtype,
                        name="layer_norm")(states[-1])
    chex.assert_shape(last, (mel.shape[0], h.shape[1], cfg.d_model))
    return {"last_hidden_state": last, "hidden_states": tuple(states[:-1]) + (last,),
            "frame_mask": frame_mask}

  @nn.nowrap
  def embed(self, mel: Array, lengths: Optional[Array], train: bool):
    """(input of layer 0 [B, T', D], frame mask [B, T']): convolutions + positions."""
    cfg = self.config
    chex.assert_rank(mel, 3)
    chex.assert_axis_dimension(mel, 2, cfg.num_mel_bins)
    if mel.shape[1] > cfg.max_mel_frames:
      raise ValueError(f"WhisperEncoder: {mel.shape[1]} mel frames exceed the "
                       f"{cfg.max_mel_frames} its {cfg.max_source_positions} positions cover "
                       "(30 s); cut the input (input.max_seconds)")
    gelu = activation_fn("gelu")  # HF applies exact GELU after both convs, whatever the config
    conv = functools.partial(nn.Conv, cfg.d_model, (3,), padding=((1, 1),), dtype=self.dtype)
    # Zeroing what lies past `lengths` before each conv makes a padded clip's valid frames
    # those of the clip alone (the convs' zero padding at its end).
    keep = ((lambda x: x) if lengths is None else lambda x: jnp.where(
        jnp.arange(x.shape[1])[None, :, None] < jnp.asarray(lengths)[:, None, None], x, 0))
    x = gelu(conv(name="conv1")(keep(mel.astype(self.dtype))))
    x = gelu(conv(strides=(2,), name="conv2")(keep(x)))
    t = x.shape[1]
    h = x + Positions(cfg, name="embed_positions")(t).astype(self.dtype)
    h = nn.Dropout(cfg.dropout)(h, deterministic=not train)
    if lengths is None:
      return h, jnp.ones(h.shape[:2], bool)
    chex.assert_shape(lengths, (mel.shape[0],))
    return h, jnp.arange(t)[None, :] < encoder_frames(jnp.asarray(lengths))[:, None]

  @nn.nowrap
  def entering(self, states: Array, lengths: Optional[Array]):
    """(`states` [B, T', D], frame mask [B, T']) for `first_layer` > 0: lengths count frames."""
    chex.assert_rank(states, 3)
    chex.assert_axis_dimension(states, 2, self.config.d_model)
    if lengths is None:
      return states.astype(self.dtype), jnp.ones(states.shape[:2], bool)
    chex.assert_shape(lengths, (states.shape[0],))
    mask = jnp.arange(states.shape[1])[None, :] < jnp.asarray(lengths)[:, None]
    return states.astype(self.dtype), mask


def init_variables(config: WhisperConfig, rng: Array, **module_kwargs):
  """Random variables for `WhisperEncoder(config)` (HF-style initialisation)."""
  dummy = jnp.zeros((1, 2, config.num_mel_bins), jnp.float32)
  return jax.jit(WhisperEncoder(config, **module_kwargs).init)(rng, dummy)
