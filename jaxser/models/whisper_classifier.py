"""Utterance classifiers on the Whisper encoder: fine-tuned end to end, or on frozen features.

Both follow SUPERB's recipe: the encoder's hidden states -> one chosen layer, or a learned
softmax-weighted sum of all of them (`layer=-1`) -> mean over valid frames -> a linear
(`hidden=()`) or MLP head. `WhisperClassifier` runs the encoder on log-mel input (the
"fine-tuned encoder" teacher of the papers; `freeze_encoder` / `freeze_layers` keep some
or all of it fixed). `FeatureHead` takes what a frozen encoder gives once per
utterance (input kind `whisper_layers`: every layer's frame mean), so a LOSO run pays one
encoder pass over the corpus.
"""

from __future__ import annotations

from typing import Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.core import unfreeze

from jaxser.features import frontend as frontend_lib
from jaxser.features import whisper_mel
from jaxser.models import layers as layers_lib
from jaxser.models import whisper as whisper_lib

FRONTENDS = ("", "whisper_logmel", "whisper_states")


def mix_layers(module: nn.Module, states, layer: int):
  """Layer `layer` of states [B, L + 1, ...], or their softmax-weighted sum when -1."""
  n = states.shape[1]
  if layer >= 0:
    if layer >= n:
      raise ValueError(f"model.layer={layer}: the encoder has layers 0-{n - 1} "
                       "(0 = input of the first layer); use -1 for a learned weighted sum")
    return states[:, layer]
  weights = jax.nn.softmax(module.param("layer_weights", nn.initializers.constant(1.0 / n), (n,)))
  return jnp.tensordot(weights, states, axes=((0,), (1,)))


def classifier_head(x, num_classes: int, hidden: Sequence[int], dropout: float, train: bool):
  """Dropout -> [Dense -> ReLU -> dropout] per hidden width -> Dense: (logits, embedding)."""
  h = nn.Dropout(dropout, deterministic=not train)(x)
  for i, width in enumerate(hidden):
    h = nn.Dropout(dropout, deterministic=not train)(nn.relu(nn.Dense(width, name=f"fc{i}")(h)))
  return nn.Dense(num_classes, name="classifier")(h), h


class FeatureHead(nn.Module):
  """Fixed-size features [B, K · D] (K layers of D; K = `num_layers`) -> logits.

  With the input kind `whisper_layers` (K = L + 1, each layer's frame mean) this is the
  frozen-encoder teacher; with K = 1 a linear / MLP classifier on any feature vector
  (openSMILE functionals), inputs standardised by `input.normalization`.
  """

  num_classes: int
  num_layers: int = 1
  layer: int = -1
  hidden: Sequence[int] = ()
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x, length=None, *, train: bool = False):
    del length
    chex.assert_rank(x, 2)
    if x.shape[1] % self.num_layers:
      raise ValueError(f"feature_head: {x.shape[1]} input features do not split into "
                       f"num_layers={self.num_layers} layers")
    states = x.reshape(x.shape[0], self.num_layers, -1)
    h = states[:, 0] if self.num_layers == 1 else mix_layers(self, states, self.layer)
    logits, h = classifier_head(h, self.num_classes, self.hidden, self.dropout, train)
    return {"logits": logits, "embedding": h}


class WhisperClassifier(nn.Module):
  """Log-mel [B, T, n_mels] + valid frames -> {'logits', 'embedding'} (+ hidden states).

  `checkpoint` (see `jaxser.models.pretrained.load_whisper`) gives shape and weights, else
  `preset`. `mask_padding=False` is Whisper's convention for 30 s padded input: every frame
  attends to the zero-padded tail; pooling always covers the valid frames only.
  `freeze_encoder` trains the head alone; `freeze_layers=k` keeps the convolutions and the
  lowest k layers fixed. `output_hidden_states` adds 'hidden_states' [B, L + 1, T', D] and
  'frame_mask' (what MLKD distils). `frontend="whisper_logmel"` takes 16 kHz waveforms
  [B, N] (+ valid samples) and computes the log-mel in the graph (clip length, no 30 s
  padding), so waveform noise (`stages.<name>.noise`) reaches the encoder.
  `frontend="whisper_states"` takes the state entering layer k = `freeze_layers`
  [B, T', D], or states 0..k [B, T', k + 1, D] (+ valid frames; input kind
  `whisper_states`, computed once per clip): the same model as "whisper_logmel" with k
  layers frozen, without running them every step. Its params hold the layers above k only
  (none when k is the depth), and `layer` still counts from the encoder's input.
  `standardize_layers` standardises each state's frame mean per dimension (batch norm
  without scale or offset) before the layer mix: the frozen-feature probe's recipe.
  """

  num_classes: int
  preset: str = "whisper-base"
  checkpoint: str = ""
  layer: int = -1
  hidden: Sequence[int] = ()
  dropout: float = 0.1
  mask_padding: bool = True
  freeze_encoder: bool = False
  freeze_layers: int = 0
  num_hidden_layers: int = 0
  output_hidden_states: bool = False
  remat: bool = False
  frontend: str = ""
  standardize_layers: bool = False

  @nn.nowrap
  def encoder_config(self) -> whisper_lib.WhisperConfig:
    if self.checkpoint:
      from jaxser.models import pretrained
      cfg = pretrained.whisper_config(self.checkpoint)
    elif self.preset in whisper_lib.PRESETS:
      cfg = whisper_lib.PRESETS[self.preset]
    else:
      raise ValueError(f"whisper_classifier: preset {self.preset!r} is unknown; use one of "
                       f"{sorted(whisper_lib.PRESETS)} or set model.checkpoint")
    return cfg.replace(encoder_layers=self.num_hidden_layers) if self.num_hidden_layers else cfg

  @nn.nowrap
  def first_layer(self) -> int:
    """The lowest layer the model runs: `freeze_layers` on cached states, else 0."""
    if self.frontend != "whisper_states":
      return 0
    if self.freeze_layers < 1 or not self.mask_padding:
      raise ValueError("whisper_classifier: model.frontend='whisper_states' needs "
                       "model.freeze_layers >= 1 (the layers the input kind ran: its "
                       f"input.layer; now {self.freeze_layers}) and mask_padding=True")
    return self.freeze_layers

  @nn.nowrap
  def mel(self, x, length):
    """The encoder's input: (log-mel [B, T, n_mels], valid mel frames or None), or with
    `frontend="whisper_states"` (states [B, T', D], valid encoder frames or None)."""
    if self.frontend not in FRONTENDS:
      raise ValueError(f"whisper_classifier: model.frontend={self.frontend!r} is unknown; use "
                       f"one of {FRONTENDS} ('' = log-mel input)")
    if self.frontend == "whisper_states":
      chex.assert_rank(x, {3, 4})
      return x, length
    if not self.frontend:
      chex.assert_rank(x, 3)
      return x, length
    chex.assert_rank(x, 2)
    mel = frontend_lib.whisper_logmel(x, self.encoder_config().num_mel_bins)
    return mel, None if length is None else jnp.asarray(length) // whisper_mel.HOP

  @nn.nowrap
  def encode(self, x, length, train: bool):
    """(hidden states [B, S, T', D], valid encoder frames [B]) of the model's input: S = L + 1,
    or L + 1 - k on the state entering layer k; called from a compact `__call__`, so the
    encoder is that module's `encoder`."""
    x, length = self.mel(x, length)
    first, cfg = self.first_layer(), self.encoder_config()
    lower = None
    if x.ndim == 4:  # cached states 0..k: the encoder continues from the last of them
      if x.shape[2] != first + 1:
        raise ValueError(f"whisper_classifier: {x.shape[2]} cached states for freeze_layers="
                         f"{first}; the input's layer must be the model's freeze_layers")
      lower, x = jnp.moveaxis(x[:, :, :first], 2, 1), x[:, :, first]
    if first < cfg.encoder_layers:
      out = whisper_lib.WhisperEncoder(cfg, remat=self.remat, first_layer=first, name="encoder")(
          x, lengths=length if self.mask_padding else None, train=train)
      states = jnp.stack(out["hidden_states"], axis=1)
    else:  # every layer ran before: the last cached state is the encoder's output (normed)
      states = x[:, None]
    if lower is not None:
      states = jnp.concatenate([lower.astype(states.dtype), states], axis=1)
    if length is None:
      frames = jnp.full((x.shape[0],), states.shape[2])
    else:
      frames = jnp.asarray(length) if first else whisper_lib.encoder_frames(length)
    return states, frames

  @nn.compact
  def __call__(self, x, length=None, *, train: bool = False):
    states, frames = self.encode(x, length, train)  # [B, S, T', D], [B]
    if self.freeze_encoder:
      states = jax.lax.stop_gradient(states)
    pooled = self.pool(states, frames, train)
    logits, h = classifier_head(pooled, self.num_classes, self.hidden, self.dropout, train)
    chex.assert_shape(logits, (x.shape[0], self.num_classes))
    result = {"logits": logits, "embedding": pooled}
    if self.output_hidden_states:
      result["hidden_states"] = states
      result["frame_mask"] = jnp.arange(states.shape[2])[None, :] < frames[:, None]
    return result

  @nn.nowrap
  def pool(self, states, frames, train: bool):
    """[B, D]: layer `layer` of states [B, S, T', D] (or their learned mix, -1; the last
    state, None) averaged over the valid frames; called from a compact `__call__`."""
    if self.layer is None:
      return layers_lib.masked_mean(states[:, -1], frames)
    first = self.encoder_config().encoder_layers + 1 - states.shape[1]  # states not given
    if first and self.layer < 0:
      raise ValueError("whisper_classifier: model.layer=-1 mixes every hidden state, but the "
                       f"input holds only the state entering layer {first}; give the input "
                       "kind whisper_states all_states=True (or choose one layer)")
    if 0 <= self.layer < first:
      raise ValueError(f"whisper_classifier: model.layer={self.layer} lies in the frozen "
                       f"layers below {first} that the input ran; choose {first} or above, or -1")
    layer = self.layer - first
    if self.standardize_layers:
      # Each state's frame mean standardised per dimension (batch statistics, running ones
      # at inference) before the mix: the probe recipe of the frozen-feature teachers, whose
      # hidden states differ in scale by orders of magnitude between layers and dimensions.
      means = layers_lib.masked_mean(jnp.moveaxis(states, 2, 1), frames)  # [B, S, D]
      means = nn.BatchNorm(use_running_average=not train, axis=(1, 2), momentum=0.9,
                           epsilon=1e-5, use_scale=False, use_bias=False,
                           name="layer_norm_stats")(means)
      return mix_layers(self, means, layer)
    return layers_lib.masked_mean(mix_layers(self, states, layer), frames)

  @nn.nowrap
  def frozen_params(self, params):
    """A bool per weight: the fixed positional table, and what `freeze_*` keeps fixed."""

    def frozen(path, _):
      keys = [getattr(p, "key", None) for p in path]
      if keys[0] != "encoder":
        return False
      if self.freeze_encoder or keys[1] == "embed_positions":
        return True
      if keys[1] in ("conv1", "conv2"):
        return self.freeze_layers > 0
      return keys[1] == "layers" and int(keys[2]) < self.freeze_layers

    return jax.tree_util.tree_map_with_path(frozen, params)

  @nn.nowrap
  def encoder_params(self, params):
    """A bool per weight: the pretrained encoder's (what `train.encoder_learning_rate` steps)."""
    return jax.tree_util.tree_map_with_path(lambda path, _: path[0].key == "encoder", params)

  @nn.nowrap
  def full_params(self, params):
    """`params` as the same model on waveforms holds them: on cached states
    (`frontend="whisper_states"`), the frozen encoder parts the input ran, from `checkpoint`,
    under the model's own; otherwise `params` unchanged."""
    if self.frontend != "whisper_states":
      return params
    from jaxser.models import pretrained
    _, encoder, _ = pretrained.load_whisper(self.checkpoint)
    own = params.get("encoder", {})
    encoder = {**encoder, **own, "layers": {**encoder["layers"], **own.get("layers", {})}}
    return {**params, "encoder": jax.tree.map(jnp.asarray, encoder)}

  @nn.nowrap
  def init_from_teacher(self, variables, teacher_params, layers):
    """`variables` with a teacher WhisperClassifier's params: its encoder layers `layers`
    (1-based; MLKD: the even ones) in order, convolutions, positions, final layer norm and
    head as they are; a learned layer weighting keeps the teacher's weights of the states
    the student's layers reproduce (0 and `layers`)."""
    if "encoder" not in teacher_params:
      raise ValueError(f"init_from: the teacher has no Whisper encoder (its params: "
                       f"{sorted(teacher_params)})")
    params = unfreeze(variables["params"])
    if len(layers) != len(params["encoder"]["layers"]):
      raise ValueError(f"init_from: {len(layers)} teacher layers {tuple(layers)} for a student "
                       f"of {len(params['encoder']['layers'])} layers; give one per layer")
    theirs = teacher_params["encoder"]["layers"]
    if not all(1 <= k <= len(theirs) for k in layers):
      raise ValueError(f"init_from: layers {tuple(layers)}; the teacher has layers 1-{len(theirs)}")
    new = {k: v for k, v in teacher_params.items() if k in params}
    new["encoder"] = {**teacher_params["encoder"],
                      "layers": {str(i): theirs[str(k - 1)] for i, k in enumerate(layers)}}
    if "layer_weights" in params and "layer_weights" in teacher_params:
      new["layer_weights"] = jnp.asarray(teacher_params["layer_weights"])[
          np.asarray((0, *layers))]
    bad = [k for k in params if k not in new]
    shapes = lambda t: jax.tree.map(np.shape, t)
    if bad or shapes(new) != shapes(params):
      raise ValueError(f"init_from: teacher and student differ beyond the layer count "
                       f"({bad or 'shapes'}); give the student the teacher's checkpoint, "
                       "layer and hidden settings")
    return {**variables, "params": new}

  @nn.nowrap
  def load_pretrained(self, variables):
    """`variables` with the checkpoint's encoder weights (heads start fresh)."""
    if not self.checkpoint or "encoder" not in variables["params"]:
      return variables
    from jaxser.models import pretrained
    _, encoder, _ = pretrained.load_whisper(self.checkpoint)
    params = unfreeze(variables["params"])
    shapes = lambda t: jax.tree.map(jnp.shape, t)
    first, top = self.first_layer(), self.num_hidden_layers or len(encoder["layers"])
    # A shallower student keeps the lowest layers; on cached states, the ones above them.
    encoder = {**{k: v for k, v in encoder.items()
                  if not first or k not in ("conv1", "conv2", "embed_positions")},
               "layers": {k: v for k, v in encoder["layers"].items() if first <= int(k) < top}}
    if shapes(encoder) != shapes(params["encoder"]):
      raise ValueError(f"model.checkpoint={self.checkpoint!r}: its encoder does not match the "
                       "model built from it")
    params["encoder"] = jax.tree.map(jnp.asarray, encoder)
    return {**variables, "params": params}
