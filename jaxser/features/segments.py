"""Fixed-length segmentation with overlap, and utterance-level aggregation of segment outputs.

An utterance of length T (samples, or frames for [T, F] features) gives segments starting
at 0, hop, 2 hop, ... that fit entirely: 1 + (T - seg_len) // hop of them. A tail shorter
than a segment is dropped (`pad_tail=True` keeps it as one more zero-padded segment); an
utterance shorter than one segment becomes one zero-padded segment, so every utterance
has at least one.
"""

from __future__ import annotations

from typing import Sequence

import chex
import numpy as np


def num_segments(length: int, seg_len: int, hop: int, pad_tail: bool = False) -> int:
  """How many segments `segment` cuts from `length` entries."""
  if seg_len <= 0 or hop <= 0:
    raise ValueError(f"segment length {seg_len} and hop {hop} must be positive")
  if length <= seg_len:
    return 1
  full = 1 + (length - seg_len) // hop
  tail = length - ((full - 1) * hop + seg_len)
  return full + (1 if pad_tail and tail > 0 else 0)


def segment(x: np.ndarray, seg_len: int, hop: int, pad_tail: bool = False) -> np.ndarray:
  """[n_seg, seg_len] segments of a 1-D signal, or [n_seg, seg_len, F] of [T, F] frames."""
  if x.ndim not in (1, 2):
    raise ValueError(f"segment: expected [T] or [T, F], got shape {x.shape}")
  n = num_segments(len(x), seg_len, hop, pad_tail)
  total = (n - 1) * hop + seg_len
  padded = np.zeros((max(total, len(x)),) + x.shape[1:], x.dtype)
  padded[:len(x)] = x
  idx = np.arange(seg_len)[None, :] + hop * np.arange(n)[:, None]
  out = padded[idx]
  chex.assert_shape(out, (n, seg_len) + x.shape[1:])
  return out


def segment_all(seqs: Sequence[np.ndarray], seg_len: int, hop: int,
                pad_tail: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """Segments of every sequence stacked, and the index of the sequence each came from."""
  segs = [segment(s, seg_len, hop, pad_tail) for s in seqs]
  index = np.concatenate([np.full(len(s), i, np.int32) for i, s in enumerate(segs)])
  return np.concatenate(segs, axis=0), index


def _softmax(z: np.ndarray) -> np.ndarray:
  z = z - z.max(axis=-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(axis=-1, keepdims=True)


def aggregate(segment_logits: np.ndarray, segment_utt_index: np.ndarray, num_utts: int,
              how: str = "mean_prob") -> np.ndarray:
  """Utterance scores [num_utts, C] from segment logits [S, C]; argmax gives the prediction.

  'mean_prob': mean of segment softmax probabilities; 'mean_logit': mean of logits;
  'vote': fraction of segments whose argmax is each class (a tie goes to the lower class index).
  """
  chex.assert_rank(segment_logits, 2)
  chex.assert_shape(segment_utt_index, (segment_logits.shape[0],))
  logits = np.asarray(segment_logits, np.float64)
  index = np.asarray(segment_utt_index)
  if index.size and (index.min() < 0 or index.max() >= num_utts):
    raise ValueError(f"aggregate: segment_utt_index outside [0, {num_utts})")
  counts = np.bincount(index, minlength=num_utts).astype(np.float64)
  if np.any(counts == 0):
    missing = np.flatnonzero(counts == 0)[:5].tolist()
    raise ValueError(f"aggregate: utterances {missing} have no segments")
  if how == "mean_prob":
    values = _softmax(logits)
  elif how == "mean_logit":
    values = logits
  elif how == "vote":
    values = np.eye(logits.shape[1])[logits.argmax(axis=1)]
  else:
    raise ValueError(f"aggregate: how={how!r} is unknown; choose mean_prob, mean_logit or vote")
  sums = np.zeros((num_utts, logits.shape[1]))
  np.add.at(sums, index, values)
  return (sums / counts[:, None]).astype(np.float32)


def utterance_logits(segment_logits: np.ndarray, segment_utt_index: np.ndarray, num_utts: int,
                     how: str = "mean_prob") -> np.ndarray:
  """`aggregate` as logits [num_utts, C]: log of mean probabilities or vote shares, or mean logits."""
  if how == "slots":  # dialogue examples [N, T, C]: the utterance of every slot (-1: padding)
    flat = np.asarray(segment_logits).reshape(-1, segment_logits.shape[-1])
    index = np.asarray(segment_utt_index)
    out = np.zeros((num_utts, flat.shape[1]), np.float32)
    out[index[index >= 0]] = flat[index >= 0]
    return out
  scores = aggregate(segment_logits, segment_utt_index, num_utts, how)
  return scores if how == "mean_logit" else np.log(np.maximum(scores, 1e-7))
