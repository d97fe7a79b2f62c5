"""PyTorch twins of the models, losses and optimizers that scripts/bench.py times against jaxser.

    from bench_torch import twin, train_call, infer_call
    model = twin(flax_module, num_classes)       # same layers, shapes and parameter count

Each twin is built from the Flax module the jaxser side uses (its fields, or its
`encoder_config()`), takes (x, length) as that module does and returns a dict with
'logits' (plus what the loss or the inference row needs):

    litecnn             LiteCNN as tests/test_litecnn.py `_TorchLiteCNN` (NCW)
    dkdfmh              DKDFMH as tests/test_dkdfmh.py `_torch_reference` (NCHW), one 1x1
                        conv per Q / K / V holding every head (flax's DenseGeneral)
    w2v2_classifier     HF `HubertForSequenceClassification` / `Wav2Vec2ForSequenceClassification`
                        of the same config (`Wav2Vec2Config.to_hf()`), LayerDrop 0 (see below)
    whisper_classifier  HF `WhisperEncoder` + jaxser's head (softmax-weighted layer sum or one
                        layer, mean over valid frames, dropout, Linear / MLP)
    emodistill_student  HF `HubertModel` + the two projection heads + the FFN classifier

LayerDrop: jaxser's encoders run every layer and drop its output (static shapes); HF skips
the layer's compute. The HF twins get layerdrop=0, so both sides do the same work.
Optimizers follow `jaxser.trainer.make_optimizer`: "adam" with weight decay is PyTorch Adam's
L2 term, "adamw" AdamW, grad_clip_norm clip_grad_norm_, warmup_cosine a LambdaLR.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# ----------------------------------------------------------------------------- models


class LiteCNN(nn.Module):
  """jaxser.models.litecnn.LiteCNN (pool "adaptive_avg") in PyTorch layout."""

  def __init__(self, m, classes):
    super().__init__()
    if m.pool != "adaptive_avg":
      raise ValueError(f"bench_torch.LiteCNN: pool={m.pool!r} has no twin; use 'adaptive_avg'")
    k = m.block_kernel
    layers = [nn.Conv1d(1, m.stem_features, m.stem_kernel, stride=m.stem_stride, bias=False),
              nn.BatchNorm1d(m.stem_features), nn.ReLU()]
    c = m.stem_features
    for f in m.block_features:
      layers += [nn.Conv1d(c, c, k, padding=k // 2, groups=c, bias=False),
                 nn.Conv1d(c, f, 1, bias=False), nn.BatchNorm1d(f), nn.ReLU(),
                 nn.MaxPool1d(3, 2)]
      c = f
    self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool1d(m.pool_length))
    self.fc1 = nn.Linear(c * m.pool_length, m.hidden)
    self.drop = nn.Dropout(m.dropout)
    self.fc2 = nn.Linear(m.hidden, classes)

  def forward(self, x, length=None):
    h = self.drop(F.relu(self.fc1(self.features(x[:, None]).flatten(1))))
    return {"logits": self.fc2(h), "embedding": h}


class DKDFMH(nn.Module):
  """jaxser.models.dkdfmh.DKDFMH: [B, T, F] log filterbanks, NCHW inside."""

  def __init__(self, m, classes):
    super().__init__()
    b = m.branch_features
    self.conv1a = nn.Conv2d(1, b, (10, 2), padding=(4, 0), bias=False)
    self.conv1b = nn.Conv2d(1, b, (2, 8), padding=(0, 3), bias=False)
    self.bn1a, self.bn1b = nn.BatchNorm2d(b), nn.BatchNorm2d(b)
    widths = (2 * b,) + tuple(m.features)
    self.convs = nn.ModuleList(nn.Conv2d(i, o, 3, padding=1, bias=False)
                               for i, o in zip(widths, widths[1:]))
    self.bns = nn.ModuleList(nn.BatchNorm2d(o) for o in widths[1:])
    self.heads, self.hidden = m.heads, m.attention_hidden
    self.use_attention = m.use_attention
    if m.use_attention:
      self.qkv = nn.ModuleList(nn.Conv2d(widths[-1], m.heads * m.attention_hidden, 1)
                               for _ in range(3))
    self.drop = nn.Dropout(m.dropout)
    self.fc = nn.Linear(m.attention_hidden if m.use_attention else widths[-1], classes)

  def _attention(self, x):
    """Per head softmax over channels of Q * K, times V, ReLU; heads averaged point by point."""
    q, k, v = (f(x).unflatten(1, (self.heads, self.hidden)) for f in self.qkv)
    return F.relu(torch.softmax(q * k, dim=2) * v).mean(1)

  def forward(self, x, length=None):
    x = x[:, None]
    x = torch.cat((F.relu(self.bn1a(self.conv1a(x))), F.relu(self.bn1b(self.conv1b(x)))), 1)
    for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
      x = F.relu(bn(conv(x)))
      if i < 2:
        x = F.max_pool2d(x, 2)
    if self.use_attention:
      x = self._attention(x)
    emb = x.mean((2, 3))
    return {"logits": self.fc(self.drop(emb)), "embedding": emb}


def _frame_mask(lengths, frames, count_frames):
  """[B, frames] bool: True on the frames that `lengths` valid inputs reach."""
  return torch.arange(frames)[None, :] < count_frames(lengths)[:, None]


def _masked_mean(h, mask):
  m = mask.to(h.dtype)[..., None]
  return (h * m).sum(1) / m.sum(1).clamp(min=1)


def _hf_w2v2_config(encoder_cfg, **extra):
  import transformers
  cls = (transformers.HubertConfig if encoder_cfg.model_type == "hubert"
         else transformers.Wav2Vec2Config)
  return cls(**{**encoder_cfg.to_hf(), "layerdrop": 0.0, **extra})


class W2V2Classifier(nn.Module):
  """HF *ForSequenceClassification of jaxser.models.w2v2_classifier.W2V2Classifier's shape."""

  def __init__(self, m, classes):
    super().__init__()
    import transformers
    enc = m.encoder_config()
    cfg = _hf_w2v2_config(enc, num_labels=classes, classifier_proj_size=m.projector_size,
                          use_weighted_layer_sum=m.weighted_layer_sum())
    cls = (transformers.HubertForSequenceClassification if enc.model_type == "hubert"
           else transformers.Wav2Vec2ForSequenceClassification)
    self.hf = cls(cfg)
    if m.freeze_feature_encoder:
      self.hf.freeze_feature_encoder()
    self.mask_padding = m.mask_padding

  def forward(self, x, length=None):
    mask = None
    if self.mask_padding and length is not None:
      mask = (torch.arange(x.shape[1])[None, :] < length[:, None]).long()
    return {"logits": self.hf(x, attention_mask=mask).logits}


class _ProjectionHead(nn.Module):
  def __init__(self, width, hidden, features):
    super().__init__()
    self.dense1, self.dense2 = nn.Linear(width, hidden), nn.Linear(hidden, features)

  def forward(self, x):
    return self.dense2(F.gelu(self.dense1(x)))


class EmoDistillStudent(nn.Module):
  """jaxser.models.emodistill.EmoDistillStudent: HF HubertModel + heads + FFN classifier."""

  def __init__(self, m, classes):
    super().__init__()
    import transformers
    enc = m.encoder_config()
    cls = transformers.HubertModel if enc.model_type == "hubert" else transformers.Wav2Vec2Model
    self.encoder = cls(_hf_w2v2_config(enc))
    d = enc.hidden_size
    self.linguistic_head = _ProjectionHead(d, m.head_dim, m.linguistic_dim)
    self.prosodic_head = _ProjectionHead(d, m.head_dim, m.prosodic_dim)
    self.classifier_hidden = nn.Linear(m.linguistic_dim + m.prosodic_dim, m.classifier_hidden)
    self.drop = nn.Dropout(m.dropout)
    self.classifier = nn.Linear(m.classifier_hidden, classes)
    self.mask_padding = m.mask_padding

  def forward(self, x, length=None):
    mask = None
    if self.mask_padding and length is not None:
      mask = (torch.arange(x.shape[1])[None, :] < length[:, None]).long()
    h = self.encoder(x, attention_mask=mask).last_hidden_state
    frames = (self.encoder._get_feature_vector_attention_mask(h.shape[1], mask) if mask is not None
              else torch.ones(h.shape[:2], dtype=torch.bool))
    pooled = _masked_mean(h, frames)
    z_l, z_p = self.linguistic_head(pooled), self.prosodic_head(pooled)
    emb = torch.cat([z_l, z_p], -1)
    logits = self.classifier(self.drop(F.gelu(self.classifier_hidden(emb))))
    return {"logits": logits, "embedding": emb, "embedding_linguistic": z_l,
            "embedding_prosodic": z_p}


class WhisperClassifier(nn.Module):
  """HF WhisperEncoder + jaxser.models.whisper_classifier's head, on 30 s (padded) log-mel.

  HF takes exactly 2 * max_source_positions mel frames (3000) and masks nothing, i.e.
  jaxser's `mask_padding=False`; pooling covers the valid frames (`length`) only. Returns
  'hidden_states' [B, L + 1, T', D] too (the frozen-feature inference row's output).
  """

  def __init__(self, m, classes):
    super().__init__()
    import transformers
    from transformers.models.whisper.modeling_whisper import WhisperEncoder
    if m.mask_padding or m.freeze_encoder or m.freeze_layers:
      raise ValueError("bench_torch.WhisperClassifier: set mask_padding=False (HF masks "
                       "nothing) and no freeze_* (not twinned)")
    enc = m.encoder_config()
    self.encoder = WhisperEncoder(transformers.WhisperConfig(**enc.to_hf()))
    n = enc.encoder_layers + 1
    self.layer = m.layer
    if m.layer < 0:
      self.layer_weights = nn.Parameter(torch.full((n,), 1.0 / n))
    self.drop = nn.Dropout(m.dropout)
    widths = (enc.d_model,) + tuple(m.hidden)
    self.hidden = nn.ModuleList(nn.Linear(i, o) for i, o in zip(widths, widths[1:]))
    self.classifier = nn.Linear(widths[-1], classes)

  def forward(self, x, length=None):
    out = self.encoder(x.transpose(1, 2), output_hidden_states=True)
    states = torch.stack(out.hidden_states, 1)  # [B, L + 1, T', D]
    if self.layer >= 0:
      h = states[:, self.layer]
    else:
      h = (torch.softmax(self.layer_weights, 0)[None, :, None, None] * states).sum(1)
    count = lambda n: (n - 1) // 2 + 1  # whisper.encoder_frames
    mask = (_frame_mask(length, h.shape[1], count) if length is not None
            else torch.ones(h.shape[:2], dtype=torch.bool))
    pooled = _masked_mean(h, mask)
    e = self.drop(pooled)
    for dense in self.hidden:
      e = self.drop(F.relu(dense(e)))
    # The stacked states exist either way; returning them costs nothing.
    return {"logits": self.classifier(e), "embedding": pooled, "hidden_states": states}


TWINS = {"litecnn": LiteCNN, "dkdfmh": DKDFMH, "w2v2_classifier": W2V2Classifier,
         "whisper_classifier": WhisperClassifier, "emodistill_student": EmoDistillStudent}


def twin(module, classes: int) -> nn.Module:
  """The PyTorch twin of a Flax module from jaxser.models.registry.build_model."""
  name = {v.__name__: k for k, v in TWINS.items()}.get(type(module).__name__)
  if name is None:
    raise ValueError(f"bench_torch: no PyTorch twin of {type(module).__name__}; "
                     f"twins exist for {sorted(TWINS)}")
  return TWINS[name](module, classes)


def param_count(model: nn.Module) -> int:
  """Every parameter, frozen ones included (as jaxser counts its params tree)."""
  return int(sum(p.numel() for p in model.parameters()))


# ----------------------------------------------------------------------------- losses


def ce(out, batch, cfg):
  """jaxser.methods.common.ce: cross-entropy (label_smoothing from the loss config)."""
  return F.cross_entropy(out["logits"], batch["label"],
                         label_smoothing=cfg.get("label_smoothing", 0.0))


def _kl(student, teacher, tau):
  """KL(softmax(teacher / tau) || softmax(student / tau)), batchmean (no tau^2)."""
  return F.kl_div(F.log_softmax(student / tau, -1), F.log_softmax(teacher / tau, -1),
                  log_target=True, reduction="batchmean")


def distill(out, batch, cfg):
  """jaxser.methods.emodistill.distill: α·ΣKL + β·Σ(−cos) + γ·CE on cached teacher outputs."""
  total = cfg.gamma * F.cross_entropy(out["logits"], batch["label"])
  for name, which, tau in ((cfg.linguistic, "linguistic", cfg.tau_l),
                           (cfg.prosodic, "prosodic", cfg.tau_p)):
    if not name:
      continue
    t = batch["teacher"][name]
    total = total + cfg.alpha * _kl(out["logits"], t["logits"], tau)
    total = total - cfg.beta * F.cosine_similarity(out[f"embedding_{which}"], t["embedding"],
                                                   dim=-1, eps=1e-8).mean()
  return total


LOSSES = {"ce": ce, "distill": distill}


# ----------------------------------------------------------------------------- optimizer


def _warmup_cosine(cfg, steps_per_epoch):
  """optax.warmup_cosine_decay_schedule(0, lr, warmup, total) as a LambdaLR factor."""
  total = max(cfg.epochs * steps_per_epoch, 1)
  warmup = max(int(cfg.get("warmup_epochs", 0) * steps_per_epoch), 1)
  total = max(total, warmup + 1)

  def factor(step):
    if step < warmup:
      return step / warmup
    done = min((step - warmup) / (total - warmup), 1.0)
    return 0.5 * (1 + math.cos(math.pi * done))

  return factor


def make_optimizer(model: nn.Module, cfg, steps_per_epoch: int):
  """(optimizer, scheduler or None, clip norm) of a jaxser `config.train` block."""
  if cfg.get("grad_accum_steps", 1) > 1:
    raise ValueError("bench_torch: grad_accum_steps > 1 is not twinned")
  params = [p for p in model.parameters() if p.requires_grad]
  wd = cfg.get("weight_decay", 0.0)
  if cfg.optimizer == "adam":
    opt = torch.optim.Adam(params, lr=cfg.learning_rate, weight_decay=wd)
  elif cfg.optimizer == "adamw":
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=wd)
  elif cfg.optimizer == "sgd":
    opt = torch.optim.SGD(params, lr=cfg.learning_rate, momentum=cfg.get("momentum", 0.9))
  else:
    raise ValueError(f"bench_torch: optimizer {cfg.optimizer!r} is not twinned")
  sched = None
  if cfg.schedule == "warmup_cosine":
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _warmup_cosine(cfg, steps_per_epoch))
  return opt, sched, cfg.get("grad_clip_norm", 0.0)


# ----------------------------------------------------------------------------- calls


def to_torch(batch):
  """A host batch (nested dict of NumPy arrays) as tensors; integer arrays as int64."""
  if isinstance(batch, dict):
    return {k: to_torch(v) for k, v in batch.items()}
  a = np.asarray(batch)
  return torch.from_numpy(a.astype(np.int64) if np.issubdtype(a.dtype, np.integer) else a)


class Call:
  """A timed callable; `prepare()` runs before each block (train / eval mode)."""

  def __init__(self, fn, prepare=None):
    self.fn, self.prepare = fn, prepare or (lambda: None)

  def __call__(self):
    return self.fn()


def train_call(model, loss, loss_cfg, batch, train_cfg, steps_per_epoch: int) -> Call:
  """One optimizer step per call: forward, loss, backward, (clip), step, (schedule)."""
  opt, sched, clip = make_optimizer(model, train_cfg, steps_per_epoch)
  batch = to_torch(batch)
  params = [p for p in model.parameters() if p.requires_grad]

  def step():
    opt.zero_grad(set_to_none=True)
    value = LOSSES[loss](model(batch["x"], batch["length"]), batch, loss_cfg)
    value.backward()
    if clip:
      torch.nn.utils.clip_grad_norm_(params, clip)
    opt.step()
    if sched is not None:
      sched.step()
    return value

  return Call(step, lambda: model.train(True))


def infer_call(model, batch) -> Call:
  """One forward pass per call in eval mode, without autograd."""
  batch = to_torch(batch)

  def forward():
    with torch.inference_mode():
      return model(batch["x"], batch["length"])

  return Call(forward, lambda: model.train(False))
