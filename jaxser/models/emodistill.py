"""EmoDistill (Shome & Etemad, ICASSP 2024) models: the linguistic teacher and the student.

`TextClassifier` (linguistic teacher): BERT (`jaxser.models.bert`) -> pooled output ->
dropout -> FC embedding + ReLU -> dropout -> FC classes, on transcript token ids.
`EmoDistillStudent`: HuBERT encoder (`jaxser.models.wav2vec2`) -> mean of the last hidden
state over valid frames -> two projection heads (Dense -> GELU -> Dense) giving the
linguistic and prosodic embeddings z'_L, z'_P, each as wide as its teacher's embedding ->
concatenation -> FFN classifier (Dense -> GELU -> dropout -> Dense).
The prosodic teacher is `jaxser.models.resnet.ProsodicResNet`.

Encoders start random (`preset`) or from an HF checkpoint (`checkpoint`): `model.init`
builds fresh variables, then `load_pretrained(variables)` (or `pretrained_variables`)
swaps the checkpoint's encoder in and leaves the heads fresh. Also here: `tokenize`
(transcripts -> token ids + lengths, offline HF tokenizer) and `emodistill_loss_inputs`
(model outputs -> `jaxser.losses.emodistill_loss` arguments).
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Optional, Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.core import unfreeze

from jaxser.models import bert as bert_lib
from jaxser.models import layers
from jaxser.models import wav2vec2 as w2v
from jaxser.models.hf_common import read_hf_config
from jaxser.models.whisper_classifier import WhisperClassifier

log = logging.getLogger(__name__)

_DENSE_INIT = nn.initializers.normal(stddev=0.02)  # HF's initializer_range


def _checkpoint_dir(checkpoint: str) -> str:
  from jaxser.models import pretrained  # at call time: models.pretrained imports the model modules
  return pretrained.model_directory(checkpoint)


def pretrained_variables(module: nn.Module, fresh_variables):
  """`fresh_variables` (from `module.init`) with the module's checkpoint encoder swapped in.

  Modules without a `load_pretrained` method, or without a checkpoint, get them back unchanged.
  """
  load = getattr(module, "load_pretrained", None)
  return load(fresh_variables) if load is not None else fresh_variables


# ----------------------------------------------------------------------------- linguistic teacher


class TextClassifier(nn.Module):
  """Token ids [B, L] int32 (+ real-token counts [B]) -> {'logits', 'embedding'}.

  Settings: `preset` (a `bert.PRESETS` name, random start) or `checkpoint` (an HF BERT
  directory or locally cached hub name; its config.json sets the shape and
  `load_pretrained` the encoder weights); `embedding_dim` (0: the embedding is the pooled
  output itself and the classifier sits on it, as in HF BertForSequenceClassification);
  `dropout` (None keeps the config's hidden / attention dropout; the head uses the hidden
  rate, HF's classifier_dropout default). Tokens at positions >= length are masked out.
  """

  num_classes: int
  preset: str = "tiny-bert"
  checkpoint: str = ""
  embedding_dim: int = 256
  dropout: Optional[float] = None
  remat: bool = False

  @nn.nowrap
  def encoder_config(self) -> bert_lib.BertConfig:
    """BERT shape (checkpoint config.json, else preset), always with a pooler."""
    if self.checkpoint:
      cfg = bert_lib.BertConfig.from_hf(read_hf_config(_checkpoint_dir(self.checkpoint))[0])
    elif self.preset in bert_lib.PRESETS:
      cfg = bert_lib.PRESETS[self.preset]
    else:
      raise ValueError(f"text_classifier preset={self.preset!r} is unknown; choose one of "
                       f"{sorted(bert_lib.PRESETS)} or set model.checkpoint to an HF BERT")
    cfg = cfg.replace(add_pooling_layer=True)
    if self.dropout is not None:
      cfg = cfg.replace(hidden_dropout_prob=self.dropout,
                        attention_probs_dropout_prob=self.dropout)
    return cfg

  @nn.nowrap
  def embedding_size(self) -> int:
    """Width of the 'embedding' output (what the student's linguistic head must produce)."""
    return self.embedding_dim or self.encoder_config().hidden_size

  @nn.compact
  def __call__(self, x, length=None, *, train: bool = False):
    chex.assert_rank(x, 2)
    cfg = self.encoder_config()
    batch, num_tokens = x.shape
    mask = None
    if length is not None:
      length = jnp.asarray(length, jnp.int32)
      chex.assert_shape(length, (batch,))
      mask = jnp.arange(num_tokens)[None, :] < length[:, None]
    out = bert_lib.BertModel(cfg, remat=self.remat, name="bert")(
        x.astype(jnp.int32), attention_mask=mask, train=train)
    dropout = nn.Dropout(cfg.hidden_dropout_prob, deterministic=not train)
    emb = out["pooler_output"]
    if self.embedding_dim:
      emb = nn.relu(nn.Dense(self.embedding_dim, kernel_init=_DENSE_INIT,
                             name="embedding")(dropout(emb)))
    logits = nn.Dense(self.num_classes, kernel_init=_DENSE_INIT, name="classifier")(dropout(emb))
    chex.assert_shape(emb, (batch, self.embedding_size()))
    chex.assert_shape(logits, (batch, self.num_classes))
    return {"logits": logits, "embedding": emb}

  @nn.nowrap
  def load_pretrained(self, variables):
    """`variables` (a fresh init) with the checkpoint's BERT encoder; heads stay fresh.

    Without a `checkpoint` they come back unchanged. A checkpoint without pooler weights
    keeps the fresh pooler (logged). Strict otherwise: one error lists every missing,
    unexpected or wrongly shaped tensor.
    """
    if not self.checkpoint:
      return variables
    from jaxser.models import pretrained
    _, loaded, _ = pretrained.load_encoder(self.checkpoint, family="bert")
    params = unfreeze(variables["params"])
    if "pooler" not in loaded["params"]:
      log.warning("%s has no pooler weights: TextClassifier keeps a freshly initialised pooler",
                  self.checkpoint)
    params["bert"] = {**params["bert"], **loaded["params"]}
    return {**variables, "params": params}


def tokenize(texts: Sequence[str], checkpoint: str, max_len: int = 128):
  """(ids [N, max_len] int32, lengths [N] int32) from the HF tokenizer in `checkpoint`.

  Offline: the tokenizer files come from the local directory (or local HF cache) only.
  Longer texts are truncated to `max_len` tokens ([CLS] ... [SEP] included).
  """
  from transformers import AutoTokenizer
  directory = _checkpoint_dir(checkpoint)
  try:
    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
  except (OSError, ValueError) as e:
    raise FileNotFoundError(f"{directory}: no usable tokenizer ({type(e).__name__}: {e}); "
                            "the checkpoint directory needs tokenizer.json or vocab.txt with "
                            "tokenizer_config.json") from None
  enc = tokenizer(list(texts), padding="max_length", truncation=True, max_length=max_len,
                  return_tensors="np")
  mask = np.asarray(enc["attention_mask"], bool)
  lengths = mask.sum(1).astype(np.int32)
  if not (mask == (np.arange(max_len)[None, :] < lengths[:, None])).all():
    raise ValueError(f"{directory}: the tokenizer pads on the left; TextClassifier needs real "
                     "tokens first (set padding_side='right' in tokenizer_config.json)")
  return np.asarray(enc["input_ids"], np.int32), lengths


# ----------------------------------------------------------------------------- student


class ProjectionHead(nn.Module):
  """Dense(hidden) -> GELU -> Dense(features): one of the student's two embedding heads."""

  hidden: int
  features: int

  @nn.compact
  def __call__(self, x):
    h = nn.gelu(nn.Dense(self.hidden, kernel_init=_DENSE_INIT, name="dense1")(x),
                approximate=False)
    return nn.Dense(self.features, kernel_init=_DENSE_INIT, name="dense2")(h)


def student_heads(module: nn.Module, pooled, train: bool) -> dict[str, Any]:
  """The paper's two projection heads and FFN classifier on the pooled encoder output, as
  submodules of `module` (called from its compact `__call__`; its fields give the widths)."""
  batch = pooled.shape[0]
  z_l = ProjectionHead(module.head_dim, module.linguistic_dim, name="linguistic_head")(pooled)
  z_p = ProjectionHead(module.head_dim, module.prosodic_dim, name="prosodic_head")(pooled)
  emb = jnp.concatenate([z_l, z_p], axis=-1)
  h = nn.gelu(nn.Dense(module.classifier_hidden, kernel_init=_DENSE_INIT,
                       name="classifier_hidden")(emb), approximate=False)
  h = nn.Dropout(module.dropout, deterministic=not train)(h)
  logits = nn.Dense(module.num_classes, kernel_init=_DENSE_INIT, name="classifier")(h)
  chex.assert_shape(z_l, (batch, module.linguistic_dim))
  chex.assert_shape(z_p, (batch, module.prosodic_dim))
  chex.assert_shape(logits, (batch, module.num_classes))
  return {"logits": logits, "embedding": emb, "embedding_linguistic": z_l,
          "embedding_prosodic": z_p}


class EmoDistillStudent(nn.Module):
  """Waveform [B, S] (+ valid samples [B]) -> {'logits', 'embedding' (z'_L ++ z'_P),
  'embedding_linguistic' [B, linguistic_dim], 'embedding_prosodic' [B, prosodic_dim]}.

  Settings: `preset` (a `wav2vec2.PRESETS` name), `encoder` (an explicit
  `Wav2Vec2Config`, overrides `preset`) or `checkpoint` (an HF HuBERT / wav2vec2 directory
  or locally cached hub name; weights via `load_pretrained`); `linguistic_dim` /
  `prosodic_dim` must equal the teachers' embedding widths (`TextClassifier.embedding_size()`,
  `ProsodicResNet.embedding_dim`); `head_dim` (projection heads' hidden width);
  `classifier_hidden`; `dropout` (the FFN classifier's); `encoder_dropout` (None keeps the
  config's hidden / attention / activation dropout); `mask_padding` (valid lengths act as
  HF's attention_mask and bound the mean pooling).
  """

  num_classes: int
  preset: str = "tiny-hubert"
  checkpoint: str = ""
  encoder: Optional[w2v.Wav2Vec2Config] = None
  linguistic_dim: int = 256
  prosodic_dim: int = 128
  head_dim: int = 256
  classifier_hidden: int = 256
  dropout: float = 0.1
  encoder_dropout: Optional[float] = 0.1
  mask_padding: bool = True
  remat: bool = False

  @nn.nowrap
  def encoder_config(self) -> w2v.Wav2Vec2Config:
    """The encoder's shape (checkpoint config.json, `encoder`, else preset) with dropout set."""
    if self.checkpoint and self.encoder is not None:
      raise ValueError("emodistill_student: set model.checkpoint or model.encoder, not both")
    hf = read_hf_config(_checkpoint_dir(self.checkpoint))[0] if self.checkpoint else None
    return w2v.select_config(hf, self.preset, self.encoder, dropout=self.encoder_dropout,
                             owner="emodistill_student")

  @nn.compact
  def __call__(self, x, length=None, *, train: bool = False):
    chex.assert_rank(x, 2)
    cfg = self.encoder_config()
    out = w2v.Wav2Vec2Model(cfg, remat=self.remat, name=cfg.model_type)(
        x, lengths=length if self.mask_padding else None, train=train)
    pooled = layers.masked_mean(out["last_hidden_state"], jnp.sum(out["frame_mask"], axis=1))
    chex.assert_shape(pooled, (x.shape[0], cfg.hidden_size))
    return student_heads(self, pooled, train)

  @nn.nowrap
  def load_pretrained(self, variables):
    """`variables` (a fresh init) with the checkpoint's encoder; heads and classifier stay fresh.

    Without a `checkpoint` they come back unchanged. Strict: one error lists every
    missing, unexpected or wrongly shaped encoder tensor (task heads in the file are ignored).
    """
    if not self.checkpoint:
      return variables
    from jaxser.models import pretrained
    cfg = self.encoder_config()
    state, source = pretrained.read_state_dict(_checkpoint_dir(self.checkpoint))
    encoder, ignored = pretrained.hf_state_dict_to_flax(state, cfg, source=source)
    if ignored:
      log.info("%s: not loaded (outside the encoder): %s", source, ", ".join(ignored))
    params = unfreeze(variables["params"])
    params[cfg.model_type] = encoder
    return {**variables, "params": params}


class EmoDistillWhisperStudent(WhisperClassifier):
  """EmoDistill's student on the Whisper encoder: waveform [B, S] (+ valid samples) ->
  log-mel in the graph -> encoder -> mean of the last hidden state over valid frames ->
  `student_heads` (outputs as `EmoDistillStudent`).

  Encoder settings as `WhisperClassifier` (`checkpoint` / `preset`, `freeze_layers`: the
  convolutions and lowest k layers stay fixed, `mask_padding`, `remat`); `dropout` is the
  classifier's. `frontend`: "whisper_logmel" (waveform input) or "whisper_states" (the
  state entering layer `freeze_layers`, or states 0..k, cached once per clip by that input
  kind). `layer`: None pools the last hidden state (the paper's); a layer, or -1 for a
  learned mix of all (with `standardize_layers`), as `WhisperClassifier` pools.
  """

  frontend: str = "whisper_logmel"
  layer: Optional[int] = None
  linguistic_dim: int = 256
  prosodic_dim: int = 128
  head_dim: int = 256
  classifier_hidden: int = 256

  @nn.compact
  def __call__(self, x, length=None, *, train: bool = False):
    if self.frontend not in ("whisper_logmel", "whisper_states"):
      raise ValueError("emodistill_whisper_student: model.frontend must be 'whisper_logmel' "
                       f"(waveform input) or 'whisper_states', not {self.frontend!r}")
    states, frames = self.encode(x, length, train)
    if self.freeze_encoder:
      states = jax.lax.stop_gradient(states)
    return student_heads(self, self.pool(states, frames, train), train)


# ----------------------------------------------------------------------------- loss glue


def emodistill_loss_inputs(student: Mapping[str, Any], linguistic: Optional[Mapping[str, Any]],
                           prosodic: Optional[Mapping[str, Any]]) -> dict[str, Any]:
  """Keyword arguments of `losses.emodistill_loss` (all but labels / weights) from outputs.

  `student`: `EmoDistillStudent` output; `linguistic`, `prosodic`: the teachers' (or their
  cached) 'logits' and 'embedding', or None to leave that teacher out. The student has one
  classifier: both KL terms compare its logits y_S with a teacher's. Teacher values get no
  gradient.
  """
  args = {"logits": student["logits"]}
  for side, which, teacher in (("l", "linguistic", linguistic), ("p", "prosodic", prosodic)):
    if teacher is None:
      continue
    args.update({
        f"student_logits_{side}": student["logits"],
        f"teacher_logits_{side}": jax.lax.stop_gradient(teacher["logits"]),
        f"student_emb_{side}": student[f"embedding_{which}"],
        f"teacher_emb_{side}": jax.lax.stop_gradient(teacher["embedding"]),
    })
    for kind in ("logits", "emb"):
      s, t = args[f"student_{kind}_{side}"], args[f"teacher_{kind}_{side}"]
      if s.shape != t.shape:
        raise ValueError(
            f"emodistill: student {kind} {s.shape} and {which} teacher {kind} {t.shape} differ; "
            f"set the student's {which}_dim to the teacher's embedding width and use the same "
            "class list for all three models")
  return args
