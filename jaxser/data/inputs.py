"""Model inputs of a stage, computed once per run: padded arrays + valid lengths per utterance.

`config.stages.<name>.input.kind` picks the representation; adding a kind means
adding one function to KINDS.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
from tqdm import tqdm

from jaxser.data.corpus import Corpus
from jaxser.features import audio, egemaps, fbank

DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "jaxser", "egemaps")


@dataclasses.dataclass
class InputArrays:
  ids: np.ndarray  # [N] utterance ids
  x: np.ndarray  # [N, L, ...] zero-padded along axis 1
  length: np.ndarray  # [N] int32: valid entries of axis 1
  label: np.ndarray  # [N] int32


def _pad_stack(seqs: list[np.ndarray], max_len: int | None) -> tuple[np.ndarray, np.ndarray]:
  if max_len is None:  # fixed-size vectors: nothing to pad, "length" is the vector size
    x = np.stack(seqs).astype(np.float32)
    return x, np.full(len(seqs), x.shape[1], np.int32)
  out = np.zeros((len(seqs), max_len) + seqs[0].shape[1:], np.float32)
  lengths = np.zeros(len(seqs), np.int32)
  for i, s in enumerate(seqs):
    n = min(len(s), max_len)
    out[i, :n] = s[:n]
    lengths[i] = n
  return out, lengths


def _waveforms(corpus: Corpus, desc: str):
  return [corpus.waveform(u) for u in tqdm(corpus.utterances, desc=desc, leave=False,
                                           disable=corpus.waveforms is not None)]


def waveform(corpus: Corpus, cfg) -> tuple[list[np.ndarray], int]:
  """Zero-mean unit-variance waveforms, cut or zero-padded to `cfg.max_seconds`."""
  max_len = int(round(cfg.max_seconds * corpus.sample_rate))
  waves = [audio.normalize(w) if cfg.get("normalize", True) else w
           for w in _waveforms(corpus, "loading audio")]
  return waves, max_len


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
                              cache_dir=cfg.get("cache_dir", DEFAULT_CACHE))
  return list(feats), None


def egemaps_lld(corpus: Corpus, cfg) -> tuple[list[np.ndarray], int]:
  """eGeMAPSv02 low-level descriptors [frames, 25] per utterance, 10 ms hop."""
  feats = egemaps.llds(_waveforms(corpus, "loading audio"), corpus.sample_rate,
                       cache_dir=cfg.get("cache_dir", DEFAULT_CACHE))
  return feats, int(round(cfg.max_seconds / 0.01))


KINDS = {"waveform": waveform, "logfbank": logfbank, "egemaps_functionals": egemaps_functionals,
         "egemaps_lld": egemaps_lld}


def build_inputs(corpus: Corpus, cfg) -> InputArrays:
  """Inputs of kind `cfg.kind` for every utterance of `corpus`."""
  if cfg.kind not in KINDS:
    raise ValueError(f"input kind {cfg.kind!r} is unknown; choose one of {sorted(KINDS)}")
  seqs, max_len = KINDS[cfg.kind](corpus, cfg)
  x, length = _pad_stack(seqs, max_len)
  return InputArrays(ids=np.asarray([u.id for u in corpus.utterances]), x=x, length=length,
                     label=np.asarray([u.label for u in corpus.utterances], np.int32))
