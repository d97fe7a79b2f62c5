"""Flax wav2vec2 / HuBERT encoders with HuggingFace-mirroring parameter names.

One module family covers both HF layouts: the group-norm feature extractor with a
post-LN transformer (wav2vec2-base, hubert-base) and the layer-norm feature
extractor with a pre-LN ("stable layer norm") transformer (large / lv60 models).
Flattened parameter paths joined by '.' are the HF state-dict keys, modulo the
leaf renames kernel/scale -> weight and kernel transposes (see
`jaxser.models.pretrained.flax_to_hf_state_dict`).

Also here: the config dataclass (`Wav2Vec2Config`, field names as in HF's
config.json), shape presets, a grouped 1D convolution with a hand-written VJP
(XLA's own CPU weight gradient for the 128-tap grouped conv measured ~60x slower), and
`distil_from_teacher`, which builds an N-layer student from chosen teacher layers.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Mapping, Optional, Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxser.models.hf_common import (LayerStack, activation_fn, read_hf_config,
                                     self_attention)

Array = jax.Array

def _dense_init(std: float = 0.02):
  return nn.initializers.normal(stddev=std)


# ----------------------------------------------------------------------------- config

_WAV2VEC2_FIELDS = (
    "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
    "feat_extract_activation", "feat_extract_norm", "do_stable_layer_norm", "conv_dim",
    "conv_kernel", "conv_stride", "conv_bias", "num_conv_pos_embeddings",
    "num_conv_pos_embedding_groups", "feat_proj_layer_norm", "layer_norm_eps", "hidden_dropout",
    "activation_dropout", "attention_dropout", "feat_proj_dropout", "layerdrop")


@dataclasses.dataclass(frozen=True)
class Wav2Vec2Config:
  """Encoder shape and regularisation; field names are those of HF's config.json.

  `model_type` is 'hubert' or 'wav2vec2'. `feat_proj_layer_norm` only exists in HF's
  HuBERT (wav2vec2 always has the projection layer norm). Defaults = hubert-base-ls960.
  """

  model_type: str = "hubert"
  hidden_size: int = 768
  num_hidden_layers: int = 12
  num_attention_heads: int = 12
  intermediate_size: int = 3072
  hidden_act: str = "gelu"
  feat_extract_activation: str = "gelu"
  feat_extract_norm: str = "group"
  do_stable_layer_norm: bool = False
  conv_dim: tuple[int, ...] = (512, 512, 512, 512, 512, 512, 512)
  conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
  conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
  conv_bias: bool = False
  num_conv_pos_embeddings: int = 128
  num_conv_pos_embedding_groups: int = 16
  feat_proj_layer_norm: bool = True
  layer_norm_eps: float = 1e-5
  hidden_dropout: float = 0.1
  activation_dropout: float = 0.1
  attention_dropout: float = 0.1
  feat_proj_dropout: float = 0.0
  layerdrop: float = 0.1

  def __post_init__(self):
    for name in ("conv_dim", "conv_kernel", "conv_stride"):
      object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
    if not len(self.conv_dim) == len(self.conv_kernel) == len(self.conv_stride):
      raise ValueError(f"Wav2Vec2Config: conv_dim {self.conv_dim}, conv_kernel {self.conv_kernel} "
                       f"and conv_stride {self.conv_stride} must have the same length")
    if self.model_type not in ("hubert", "wav2vec2"):
      raise ValueError(f"Wav2Vec2Config.model_type={self.model_type!r}: use 'hubert' or 'wav2vec2'")
    if self.feat_extract_norm not in ("group", "layer"):
      raise ValueError(f"Wav2Vec2Config.feat_extract_norm={self.feat_extract_norm!r}: use "
                       "'group' or 'layer'")
    if self.model_type == "wav2vec2" and not self.feat_proj_layer_norm:
      raise ValueError("Wav2Vec2Config: feat_proj_layer_norm=False exists only for HuBERT; "
                       "HF wav2vec2 always normalises before the feature projection")
    if self.hidden_size % self.num_attention_heads:
      raise ValueError(f"Wav2Vec2Config: hidden_size {self.hidden_size} is not divisible by "
                       f"num_attention_heads {self.num_attention_heads}")
    if self.hidden_size % self.num_conv_pos_embedding_groups:
      raise ValueError(f"Wav2Vec2Config: hidden_size {self.hidden_size} is not divisible by "
                       f"num_conv_pos_embedding_groups {self.num_conv_pos_embedding_groups}")
    activation_fn(self.hidden_act)
    activation_fn(self.feat_extract_activation)

  @property
  def num_feat_extract_layers(self) -> int:
    return len(self.conv_dim)

  def replace(self, **changes) -> Wav2Vec2Config:
    return dataclasses.replace(self, **changes)

  @classmethod
  def from_hf(cls, config: Mapping[str, Any] | str | os.PathLike) -> Wav2Vec2Config:
    """Our config from an HF config dict, a config.json path or a model directory."""
    config, source = read_hf_config(config)
    model_type = config.get("model_type", "wav2vec2")
    if model_type not in ("hubert", "wav2vec2"):
      raise ValueError(f"{source}: model_type={model_type!r} is not a wav2vec2/HuBERT encoder "
                       "(supported: 'hubert', 'wav2vec2')")
    unsupported = {
        "conv_pos_batch_norm": bool(config.get("conv_pos_batch_norm", False)),
        "add_adapter": bool(config.get("add_adapter", False)),
        "adapter_attn_dim": config.get("adapter_attn_dim") is not None,
    }
    bad = [k for k, v in unsupported.items() if v]
    if bad:
      raise ValueError(f"{source}: {bad} are set but not implemented by jaxser's encoder")
    kwargs = {k: config[k] for k in _WAV2VEC2_FIELDS if k in config}
    if model_type == "wav2vec2":
      kwargs["feat_proj_layer_norm"] = True  # HF's Wav2Vec2 has no switch for it
    return cls(model_type=model_type, **kwargs)

  def to_hf(self) -> dict[str, Any]:
    """An HF config.json dict that builds the same encoder (HubertModel / Wav2Vec2Model)."""
    out = {k: getattr(self, k) for k in _WAV2VEC2_FIELDS}
    out = {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}
    if self.model_type == "wav2vec2":
      del out["feat_proj_layer_norm"]
    arch = "HubertModel" if self.model_type == "hubert" else "Wav2Vec2Model"
    # This encoder applies no SpecAugment masking, so the HF model must not either
    # (mask_time_prob > 0 would also add an untrained `masked_spec_embed`).
    out.update(model_type=self.model_type, architectures=[arch],
               num_feat_extract_layers=self.num_feat_extract_layers,
               mask_time_prob=0.0, mask_feature_prob=0.0)
    return out


_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
             feat_extract_norm="group", do_stable_layer_norm=False, conv_bias=False)
_LARGE = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
              intermediate_size=4096, feat_extract_norm="layer", do_stable_layer_norm=True,
              conv_bias=True)
# Small enough to train from scratch on a CPU: the HF feature extractor's 7 convs at 64
# channels (50 frames/s), 4 layers of width 128.
_SMALL = dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512,
              conv_dim=(64,) * 7, num_conv_pos_embeddings=32, num_conv_pos_embedding_groups=4)
_TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
             conv_dim=(16, 16, 16), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2),
             num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)

# Shapes of the HF checkpoints of the same name; dropout rates are HF defaults (the
# checkpoints' config.json, read by jaxser.models.pretrained, is what loading uses).
PRESETS: dict[str, Wav2Vec2Config] = {
    "hubert-base-ls960": Wav2Vec2Config(model_type="hubert", **_BASE),
    "hubert-large-ll60k": Wav2Vec2Config(model_type="hubert", **_LARGE),
    "wav2vec2-base": Wav2Vec2Config(model_type="wav2vec2", **_BASE),
    "wav2vec2-large-lv60": Wav2Vec2Config(model_type="wav2vec2", **_LARGE),
    "small-hubert": Wav2Vec2Config(model_type="hubert", **_SMALL),
    "small-wav2vec2": Wav2Vec2Config(model_type="wav2vec2", **_SMALL),
    "tiny-hubert": Wav2Vec2Config(model_type="hubert", **_TINY),
    "tiny-hubert-large": Wav2Vec2Config(model_type="hubert", feat_extract_norm="layer",
                                        do_stable_layer_norm=True, conv_bias=True, **_TINY),
    "tiny-wav2vec2": Wav2Vec2Config(model_type="wav2vec2", **_TINY),
    "tiny-wav2vec2-large": Wav2Vec2Config(model_type="wav2vec2", feat_extract_norm="layer",
                                          do_stable_layer_norm=True, conv_bias=True, **_TINY),
}


def select_config(checkpoint_config: Optional[Mapping[str, Any]] = None, preset: str = "",
                  config: Optional[Wav2Vec2Config] = None, *, dropout: Optional[float] = None,
                  owner: str = "model") -> Wav2Vec2Config:
  """A model's encoder shape: an HF checkpoint's config.json dict, else `config`, else the
  `PRESETS` entry; `dropout` (unless None) sets the hidden, attention and activation rates."""
  if checkpoint_config is not None:
    cfg = Wav2Vec2Config.from_hf(checkpoint_config)
  elif config is not None:
    cfg = config
  elif preset in PRESETS:
    cfg = PRESETS[preset]
  else:
    raise ValueError(f"{owner} preset={preset!r} is unknown; choose one of {sorted(PRESETS)} "
                     "or set model.checkpoint to an HF model directory")
  if dropout is not None:
    cfg = cfg.replace(hidden_dropout=dropout, attention_dropout=dropout,
                      activation_dropout=dropout)
  return cfg


def feat_extract_output_lengths(lengths, config: Wav2Vec2Config):
  """Frames the conv feature extractor makes from `lengths` samples (HF's formula)."""
  for k, s in zip(config.conv_kernel, config.conv_stride):
    lengths = (lengths - k) // s + 1
  return lengths


def min_input_samples(config: Wav2Vec2Config) -> int:
  """Fewest samples that give one output frame (the receptive field, 400 for base models)."""
  n = 1
  for k, s in zip(reversed(config.conv_kernel), reversed(config.conv_stride)):
    n = (n - 1) * s + k
  return n


# ----------------------------------------------------------------------------- grouped conv


def _grouped_conv_fwd_xla(x, w, groups, pad):
  return lax.conv_general_dilated(x, w, (1,), [(pad, pad)], dimension_numbers=("NWC", "WIO", "NWC"),
                                  feature_group_count=groups)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def grouped_conv1d(x: Array, w: Array, groups: int, pad: int) -> Array:
  """Grouped 1D conv, stride 1, `pad` zeros each side: x [B, T, Cin], w [K, Cin/groups, Cout].

  Same numbers as `lax.conv_general_dilated(..., feature_group_count=groups)`; the VJP
  computes the weight gradient as one plain conv per group (XLA's own batch-grouped
  weight-gradient conv is ~60x slower on CPU for the 128-tap positional conv).
  """
  return _grouped_conv_fwd_xla(x, w, groups, pad)


def _grouped_conv1d_fwd(x, w, groups, pad):
  return _grouped_conv_fwd_xla(x, w, groups, pad), (x, w)


def _grouped_conv1d_bwd(groups, pad, res, dy):
  x, w = res
  k, cin_g, cout = w.shape
  cout_g = cout // groups
  # The input gradient is itself a forward-style grouped conv, which XLA does fast.
  _, vjp_x = jax.vjp(lambda x_: _grouped_conv_fwd_xla(x_, w, groups, pad), x)
  (dx,) = vjp_x(dy)
  # dW[k, c, o] = sum_{b,t} xpad[b, t + k, c] dy[b, t, o]: a conv over time with the
  # input channels as batch and the batch as features, once per group.
  xp = jnp.pad(x, ((0, 0), (pad, pad), (0, 0)))
  dws = []
  for g in range(groups):
    lhs = xp[:, :, g * cin_g:(g + 1) * cin_g].transpose(2, 1, 0)  # [cin_g, Tp, B]
    rhs = dy[:, :, g * cout_g:(g + 1) * cout_g].transpose(1, 0, 2)  # [T, B, cout_g]
    dwg = lax.conv_general_dilated(lhs, rhs, (1,), [(0, 0)],
                                   dimension_numbers=("NWC", "WIO", "NWC"))  # [cin_g, K, cout_g]
    dws.append(dwg)
  dw = jnp.concatenate(dws, axis=-1).transpose(1, 0, 2).astype(w.dtype)
  return dx, dw


grouped_conv1d.defvjp(_grouped_conv1d_fwd, _grouped_conv1d_bwd)


def positional_conv1d(x: Array, w: Array, groups: int, pad: int) -> Array:
  """The positional conv: `grouped_conv1d` (custom VJP) on CPU, XLA's own conv elsewhere.

  The custom VJP was measured on CPU only; accelerators keep their native grouped conv.
  """
  return lax.platform_dependent(
      x, w, cpu=lambda x, w: grouped_conv1d(x, w, groups, pad),
      default=lambda x, w: _grouped_conv_fwd_xla(x, w, groups, pad))


# ----------------------------------------------------------------------------- modules


class ConvLayer(nn.Module):
  """One feature-extractor layer: conv -> (group / layer norm) -> activation."""

  config: Wav2Vec2Config
  layer_id: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    cfg = self.config
    i = self.layer_id
    x = nn.Conv(cfg.conv_dim[i], (cfg.conv_kernel[i],), strides=(cfg.conv_stride[i],),
                padding="VALID", use_bias=cfg.conv_bias, dtype=self.dtype,
                kernel_init=nn.initializers.variance_scaling(2.0, "fan_in", "normal"),
                name="conv")(x)
    if cfg.feat_extract_norm == "layer":
      x = nn.LayerNorm(epsilon=1e-5, use_fast_variance=False, dtype=self.dtype,
                       name="layer_norm")(x)
    elif i == 0:
      # GroupNorm with one channel per group: each channel normalised over all frames,
      # padded ones included (as in HF, hence no attention mask for base models).
      x = nn.GroupNorm(num_groups=cfg.conv_dim[0], epsilon=1e-5, use_fast_variance=False,
                       dtype=self.dtype, name="layer_norm")(x)
    return activation_fn(cfg.feat_extract_activation)(x)


class ConvLayers(nn.Module):
  config: Wav2Vec2Config
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    for i in range(self.config.num_feat_extract_layers):
      x = ConvLayer(self.config, i, self.dtype, name=str(i))(x)
    return x


class FeatureEncoder(nn.Module):
  config: Wav2Vec2Config
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, waveforms: Array) -> Array:
    return ConvLayers(self.config, self.dtype, name="conv_layers")(waveforms[..., None])


class FeatureProjection(nn.Module):
  config: Wav2Vec2Config
  dtype: Any = jnp.float32
  deterministic: bool = True

  @nn.compact
  def __call__(self, x: Array) -> Array:
    cfg = self.config
    if cfg.feat_proj_layer_norm:
      x = nn.LayerNorm(epsilon=cfg.layer_norm_eps, use_fast_variance=False, dtype=self.dtype,
                       name="layer_norm")(x)
    x = nn.Dense(cfg.hidden_size, dtype=self.dtype, kernel_init=_dense_init(), name="projection")(x)
    return nn.Dropout(cfg.feat_proj_dropout)(x, deterministic=self.deterministic)


class WeightNormConv1D(nn.Module):
  """HF's weight-normed grouped conv (torch weight_norm, dim=2): w = g * v / |v|_{per tap}.

  Flax layout: weight_v [K, Cin/groups, Cout], weight_g [K, 1, 1] (HF: [Cout, Cin/groups, K]
  and [1, 1, K]); padding K // 2 on both sides, as torch's `padding=K // 2`.
  """

  features: int
  kernel_size: int
  groups: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    cin = x.shape[-1]
    k = self.kernel_size
    std = 2.0 * np.sqrt(1.0 / (k * cin))
    v = self.param("weight_v", nn.initializers.normal(std), (k, cin // self.groups, self.features))
    norm = lambda t: jnp.sqrt(jnp.sum(jnp.square(t), axis=(1, 2), keepdims=True))
    g = self.param("weight_g", lambda _rng, _shape: norm(v), (k, 1, 1))
    b = self.param("bias", nn.initializers.zeros, (self.features,))
    w = (g / norm(v)) * v
    y = positional_conv1d(x.astype(self.dtype), w.astype(self.dtype), self.groups, k // 2)
    return y + b.astype(self.dtype)


class PositionalConvEmbedding(nn.Module):
  config: Wav2Vec2Config
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    cfg = self.config
    y = WeightNormConv1D(cfg.hidden_size, cfg.num_conv_pos_embeddings,
                         cfg.num_conv_pos_embedding_groups, self.dtype, name="conv")(x)
    if cfg.num_conv_pos_embeddings % 2 == 0:
      y = y[:, :-1]  # HF's "same pad" layer: an even kernel with K//2 padding makes T + 1 frames
    return activation_fn(cfg.feat_extract_activation)(y)


class Attention(nn.Module):
  config: Wav2Vec2Config
  dtype: Any = jnp.float32
  deterministic: bool = True

  @nn.compact
  def __call__(self, x: Array, key_mask: Optional[Array]) -> Array:
    cfg = self.config
    return self_attention(x, key_mask, hidden=cfg.hidden_size, heads=cfg.num_attention_heads,
                          dropout=cfg.attention_dropout, deterministic=self.deterministic,
                          dtype=self.dtype, kernel_init=_dense_init())


class FeedForward(nn.Module):
  config: Wav2Vec2Config
  dtype: Any = jnp.float32
  deterministic: bool = True

  @nn.compact
  def __call__(self, x: Array) -> Array:
    cfg = self.config
    x = nn.Dense(cfg.intermediate_size, dtype=self.dtype, kernel_init=_dense_init(),
                 name="intermediate_dense")(x)
    x = activation_fn(cfg.hidden_act)(x)
    x = nn.Dropout(cfg.activation_dropout)(x, deterministic=self.deterministic)
    x = nn.Dense(cfg.hidden_size, dtype=self.dtype, kernel_init=_dense_init(),
                 name="output_dense")(x)
    return nn.Dropout(cfg.hidden_dropout)(x, deterministic=self.deterministic)


class EncoderLayer(nn.Module):
  """Transformer layer; post-LN (base) or pre-LN (`do_stable_layer_norm`, large)."""

  config: Wav2Vec2Config
  dtype: Any = jnp.float32
  deterministic: bool = True

  @nn.compact
  def __call__(self, h: Array, key_mask: Optional[Array]) -> Array:
    cfg = self.config
    det = self.deterministic
    ln = functools.partial(nn.LayerNorm, epsilon=cfg.layer_norm_eps, use_fast_variance=False,
                           dtype=self.dtype)
    attention = Attention(cfg, self.dtype, det, name="attention")
    feed_forward = FeedForward(cfg, self.dtype, det, name="feed_forward")
    dropout = nn.Dropout(cfg.hidden_dropout)
    if cfg.do_stable_layer_norm:
      a = attention(ln(name="layer_norm")(h), key_mask)
      h = h + dropout(a, deterministic=det)
      return h + feed_forward(ln(name="final_layer_norm")(h))
    a = attention(h, key_mask)
    h = ln(name="layer_norm")(h + dropout(a, deterministic=det))
    return ln(name="final_layer_norm")(h + feed_forward(h))


class Encoder(nn.Module):
  config: Wav2Vec2Config
  dtype: Any = jnp.float32
  deterministic: bool = True
  remat: bool = False

  @nn.compact
  def __call__(self, h: Array, frame_mask: Optional[Array]):
    cfg = self.config
    if frame_mask is not None:
      h = jnp.where(frame_mask[..., None], h, 0)
    h = h + PositionalConvEmbedding(cfg, self.dtype, name="pos_conv_embed")(h)
    layer_norm = nn.LayerNorm(epsilon=cfg.layer_norm_eps, use_fast_variance=False,
                              dtype=self.dtype, name="layer_norm")
    if not cfg.do_stable_layer_norm:
      h = layer_norm(h)
    h = nn.Dropout(cfg.hidden_dropout)(h, deterministic=self.deterministic)
    states = LayerStack(EncoderLayer, cfg, cfg.num_hidden_layers, cfg.layerdrop, self.dtype,
                        self.deterministic, self.remat, name="layers")(h, frame_mask)
    last = layer_norm(states[-1]) if cfg.do_stable_layer_norm else states[-1]
    return last, tuple(states)


class Wav2Vec2Model(nn.Module):
  """wav2vec2 / HuBERT encoder (HF `Wav2Vec2Model` / `HubertModel`), no SpecAugment masking.

  `apply(variables, waveforms [B, S], lengths=None|int[B], train=False, rngs={'dropout': k})`
  returns a dict: `last_hidden_state` [B, T, D]; `hidden_states`, a tuple of L + 1
  arrays as HF returns them (index 0 = input of the first layer; for the stable-layer-norm
  layout the last entry is the final layer's output *before* the encoder layer norm, as in
  transformers 5); `frame_mask` [B, T] bool, True on valid frames; `extract_features`
  [B, T, conv_dim[-1]], the conv features before the feature projection (HF's wav2vec2
  returns them after the projection's layer norm).
  `lengths` (samples) or `attention_mask` [B, S] (1 = valid) zero padded frames and mask
  them out of attention exactly like HF's `attention_mask`; without either, all frames
  count. The base-layout group norm still sees padded samples, as in HF.
  """

  config: Wav2Vec2Config
  dtype: Any = jnp.float32
  remat: bool = False

  @nn.compact
  def __call__(self, waveforms: Array, lengths: Optional[Array] = None,
               attention_mask: Optional[Array] = None, train: bool = False) -> dict[str, Any]:
    cfg = self.config
    chex.assert_rank(waveforms, 2)
    batch = waveforms.shape[0]
    if attention_mask is not None:
      if lengths is not None:
        raise ValueError("Wav2Vec2Model: pass lengths or attention_mask, not both")
      chex.assert_equal_shape([attention_mask, waveforms])
      lengths = jnp.sum(attention_mask.astype(jnp.int32), axis=-1)
    features = FeatureEncoder(cfg, self.dtype, name="feature_extractor")(
        waveforms.astype(self.dtype))
    num_frames = features.shape[1]
    if lengths is None:
      frame_mask = None
    else:
      lengths = jnp.asarray(lengths, jnp.int32)
      chex.assert_shape(lengths, (batch,))
      frame_lengths = feat_extract_output_lengths(lengths, cfg)
      frame_mask = jnp.arange(num_frames)[None, :] < frame_lengths[:, None]
    h = FeatureProjection(cfg, self.dtype, not train, name="feature_projection")(features)
    last, states = Encoder(cfg, self.dtype, not train, self.remat, name="encoder")(h, frame_mask)
    if frame_mask is None:
      frame_mask = jnp.ones((batch, num_frames), bool)
    chex.assert_shape(last, (batch, num_frames, cfg.hidden_size))
    return {"last_hidden_state": last, "hidden_states": states, "frame_mask": frame_mask,
            "extract_features": features}


def init_variables(config: Wav2Vec2Config, rng: Array, **module_kwargs):
  """Random variables for `Wav2Vec2Model(config)` (HF-style initialisation)."""
  dummy = jnp.zeros((1, min_input_samples(config)), jnp.float32)
  return jax.jit(Wav2Vec2Model(config, **module_kwargs).init)(rng, dummy)


def count_params(config: Wav2Vec2Config) -> int:
  """Parameter count of the encoder, computed from shapes only (no weights materialised)."""
  shapes = jax.eval_shape(lambda: init_variables(config, jax.random.key(0)))
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(shapes)))


def distil_from_teacher(teacher_config: Wav2Vec2Config, teacher_variables,
                        layers: Sequence[int] = (2, 4, 6, 8, 10, 12)):
  """(student_config, student_variables): a len(layers)-layer copy of chosen teacher layers.

  `layers` are 1-based as in the MLKD paper: layer 2 is HF `encoder.layers.1`. The feature
  extractor, feature projection, positional conv and encoder layer norm are copied too.
  """
  num = teacher_config.num_hidden_layers
  layers = tuple(int(n) for n in layers)
  if not layers or any(not 1 <= n <= num for n in layers):
    raise ValueError(f"distil_from_teacher: layers {layers} must be 1-based numbers in "
                     f"[1, {num}] (the teacher has num_hidden_layers={num})")
  params = teacher_variables["params"]
  encoder = dict(params["encoder"])
  teacher_layers = encoder["layers"]
  encoder["layers"] = {str(i): teacher_layers[str(n - 1)] for i, n in enumerate(layers)}
  student_params = dict(params)
  student_params["encoder"] = encoder
  student_config = teacher_config.replace(num_hidden_layers=len(layers))
  return student_config, {**teacher_variables, "params": student_params}
