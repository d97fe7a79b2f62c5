"""A wav2vec2 / HuBERT utterance classifier shaped like HF `Wav2Vec2ForSequenceClassification`.

encoder (`jaxser.models.wav2vec2`) -> [softmax-weighted sum of hidden states when
`use_weighted_layer_sum`] -> projector Linear(hidden -> projector_size) -> mean over
valid frames -> classifier Linear(projector_size -> classes). Parameter names mirror
HF's (`wav2vec2.*` / `hubert.*`, `projector`, `classifier`, `layer_weights`), so a
*ForSequenceClassification checkpoint loads one to one (`load_pretrained`).

As in HF, the head has no dropout of its own: `dropout` sets the encoder's hidden,
attention and activation dropout (HF's defaults: 0.1 each). This encoder applies no
SpecAugment masking, which HF applies in training when `mask_time_prob` > 0.

A stage starts from `model.init` (random); `load_pretrained(variables)` swaps in the
checkpoint's tensors and is meant to be called right after that init, before the
optimizer state is made (the hook in trainer.create_state). `freeze_feature_encoder`
stops gradients, and `frozen_params` tells the optimizer (trainer.make_optimizer) to leave
those weights alone, weight decay included, as PyTorch skips requires_grad=False ones.
"""

from __future__ import annotations

from typing import Optional

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.core import unfreeze

from jaxser.models import layers
from jaxser.models import wav2vec2 as w2v
from jaxser.models.hf_common import read_hf_config


def _stop_feature_encoder_gradient(variables):
  params = variables.get("params", {})
  if "feature_extractor" not in params:  # during init, before the submodule exists
    return variables
  params = {**params, "feature_extractor": jax.lax.stop_gradient(params["feature_extractor"])}
  return {**variables, "params": params}


# HF's freeze_feature_encoder(): no gradient reaches the conv feature extractor's weights
# (the waveform needs none either, so XLA computes no conv backward at all).
_FrozenFeaturesModel = nn.map_variables(w2v.Wav2Vec2Model, "params",
                                        trans_in_fn=_stop_feature_encoder_gradient, init=True)


class W2V2Classifier(nn.Module):
  """Waveform [B, S] (+ valid lengths) -> {'logits', 'embedding' (pooled projector output),
  and with `output_hidden_states` 'hidden_states', 'frame_mask'}.

  Settings: `preset` (a `wav2vec2.PRESETS` name: the encoder shape for training from
  scratch) or `checkpoint` (an HF model directory or a hub name in the local HF cache;
  its config.json gives the encoder shape, and `load_pretrained` its weights, overriding
  `preset`); `projector_size`; `dropout` (None keeps the preset's / checkpoint's rates);
  `freeze_feature_encoder`; `mask_padding` (True: valid lengths act as HF's
  attention_mask, in attention and in the mean pooling; False: HF called without one,
  every frame attends and is pooled, as in the LiteCNN authors' code);
  `use_weighted_layer_sum` (from the checkpoint's config.json when it has the key);
  `load_heads` (load projector / classifier / layer_weights when the checkpoint has them);
  `output_hidden_states` (also 'hidden_states' [B, L + 1, T, D], HF's order, and
  'frame_mask' [B, T]: what MLKD distils and caches); `num_hidden_layers` (0: the
  preset's / checkpoint's; MLKD's students keep half the teacher's, `init_from_teacher`).
  """

  num_classes: int
  preset: str = "tiny-wav2vec2"
  checkpoint: str = ""
  projector_size: int = 256
  dropout: Optional[float] = 0.1
  freeze_feature_encoder: bool = False
  mask_padding: bool = True
  use_weighted_layer_sum: bool = False
  load_heads: bool = True
  output_hidden_states: bool = False
  num_hidden_layers: int = 0
  remat: bool = False

  # Helpers below are `nowrap`: they run on the unbound module too (load_pretrained builds
  # another module to read the checkpoint, which a wrapped method would try to adopt).
  @nn.nowrap
  def _hf_config(self) -> Optional[dict]:
    if not self.checkpoint:
      return None
    from jaxser.models import pretrained
    return read_hf_config(pretrained.model_directory(self.checkpoint))[0]

  @nn.nowrap
  def encoder_config(self) -> w2v.Wav2Vec2Config:
    """The encoder's shape (checkpoint config.json, else preset) with `dropout` applied."""
    cfg = w2v.select_config(self._hf_config(), self.preset, dropout=self.dropout,
                            owner="w2v2_classifier")
    if self.num_hidden_layers:
      cfg = cfg.replace(num_hidden_layers=self.num_hidden_layers)
    return cfg

  @nn.nowrap
  def weighted_layer_sum(self) -> bool:
    hf = self._hf_config()
    return bool(hf.get("use_weighted_layer_sum", self.use_weighted_layer_sum) if hf
                else self.use_weighted_layer_sum)

  @nn.compact
  def __call__(self, x, length=None, *, train: bool = False):
    chex.assert_rank(x, 2)
    cfg = self.encoder_config()
    encoder_cls = _FrozenFeaturesModel if self.freeze_feature_encoder else w2v.Wav2Vec2Model
    out = encoder_cls(cfg, remat=self.remat, name=cfg.model_type)(
        x, lengths=length if self.mask_padding else None, train=train)
    if self.weighted_layer_sum():
      n = cfg.num_hidden_layers + 1
      weights = jax.nn.softmax(self.param("layer_weights", nn.initializers.constant(1.0 / n),
                                          (n,)))
      h = sum(weights[i] * s for i, s in enumerate(out["hidden_states"]))
    else:
      h = out["last_hidden_state"]
    dense_init = nn.initializers.normal(stddev=0.02)  # HF's initializer_range
    h = nn.Dense(self.projector_size, kernel_init=dense_init, name="projector")(h)
    frames = jnp.sum(out["frame_mask"], axis=1)
    pooled = layers.masked_mean(h, frames)
    logits = nn.Dense(self.num_classes, kernel_init=dense_init, name="classifier")(pooled)
    chex.assert_shape(logits, (x.shape[0], self.num_classes))
    result = {"logits": logits, "embedding": pooled}
    if self.output_hidden_states:  # batch-major, so a teacher cache keeps one row per example
      result["hidden_states"] = jnp.stack(out["hidden_states"], axis=1)  # [B, L + 1, T, D]
      result["frame_mask"] = out["frame_mask"]  # [B, T]
    return result

  @nn.nowrap
  def frozen_params(self, params):
    """A bool per weight of `params`: True for the conv feature encoder's when frozen."""
    in_features = lambda path: any(getattr(p, "key", None) == "feature_extractor" for p in path)
    return jax.tree_util.tree_map_with_path(
        lambda path, _: self.freeze_feature_encoder and in_features(path), params)

  @nn.nowrap
  def load_pretrained(self, variables):
    """`variables` (a fresh init) with the checkpoint's encoder, and its heads when present.

    Without a `checkpoint` the variables come back unchanged. Strict: a missing, extra
    or wrongly shaped encoder tensor is one error listing all of them.
    """
    if not self.checkpoint:
      return variables
    from jaxser.models import pretrained
    directory = pretrained.model_directory(self.checkpoint)
    cfg = self.encoder_config()
    state, source = pretrained.read_state_dict(directory)
    encoder, _ = pretrained.hf_state_dict_to_flax(state, cfg, source=source)
    params = unfreeze(variables["params"])
    params[cfg.model_type] = encoder
    if self.load_heads:
      for name in ("projector", "classifier"):
        if f"{name}.weight" not in state:
          continue
        w, b = np.asarray(state[f"{name}.weight"]).T, np.asarray(state[f"{name}.bias"])
        if w.shape != params[name]["kernel"].shape:
          raise ValueError(
              f"{source}: {name}.weight is {tuple(w.shape[::-1])} (out, in) but this model's "
              f"{name} is {tuple(params[name]['kernel'].shape[::-1])} (projector_size "
              f"{self.projector_size}, {self.num_classes} classes); set the stage's "
              "model.projector_size to match, or model.load_heads=False to start the heads "
              "fresh")
        params[name] = {"kernel": jnp.asarray(w, jnp.float32), "bias": jnp.asarray(b, jnp.float32)}
      if "layer_weights" in state and "layer_weights" in params:
        if state["layer_weights"].shape != params["layer_weights"].shape:
          raise ValueError(f"{source}: layer_weights has shape {state['layer_weights'].shape}, "
                           f"the encoder needs {params['layer_weights'].shape}")
        params["layer_weights"] = jnp.asarray(state["layer_weights"], jnp.float32)
    return {**variables, "params": params}

  @nn.nowrap
  def init_from_teacher(self, variables, teacher_params, layers):
    """`variables` with a teacher W2V2Classifier's params: its encoder layers `layers`
    (1-based; MLKD: the even ones) in order, everything else (features, positional conv,
    projector, classifier) copied as is. Shapes must match: a layer-count change only."""
    cfg = self.encoder_config()
    name = cfg.model_type
    if name not in teacher_params:
      raise ValueError(f"init_from: the teacher has no {name!r} encoder (its params: "
                       f"{sorted(teacher_params)})")
    teacher_cfg = cfg.replace(num_hidden_layers=len(teacher_params[name]["encoder"]["layers"]))
    student_cfg, encoder = w2v.distil_from_teacher(teacher_cfg, {"params": teacher_params[name]},
                                                   layers)
    if student_cfg.num_hidden_layers != cfg.num_hidden_layers:
      raise ValueError(f"init_from: {len(layers)} teacher layers {tuple(layers)} for a student "
                       f"of {cfg.num_hidden_layers} layers; give one teacher layer per layer")
    params = unfreeze(variables["params"])
    new = {**{k: v for k, v in teacher_params.items() if k in params}, name: encoder["params"]}
    bad = [k for k in params if k not in new]
    if bad:
      raise ValueError(f"init_from: the teacher has no {bad} to copy")
    shapes = lambda t: jax.tree.map(np.shape, t)
    if shapes(new) != shapes(params):
      raise ValueError("init_from: teacher and student shapes differ beyond the layer count; "
                       "give the student the teacher's preset / checkpoint and projector_size")
    return {**variables, "params": new}
