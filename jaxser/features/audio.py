"""Waveform I/O and shaping: read a wav as mono float32 at a sample rate, normalise, fix length."""

from __future__ import annotations

import dataclasses
import os

import chex
import numpy as np
import soundfile as sf


from jaxser.errors import UserError


class AudioError(UserError):
  """An unusable audio file; `reason` is "missing file", "empty file" or "unreadable file"."""

  def __init__(self, message: str, reason: str):
    super().__init__(message)
    self.reason = reason


@dataclasses.dataclass(frozen=True)
class AudioInfo:
  sample_rate: int
  frames: int
  channels: int

  @property
  def duration(self) -> float:
    return self.frames / self.sample_rate


def _check_file(path: str):
  if not os.path.isfile(path):
    raise AudioError(f"audio file {path} does not exist", "missing file")
  if os.path.getsize(path) == 0:
    raise AudioError(f"audio file {path} is empty (0 bytes)", "empty file")


def probe(path: str) -> AudioInfo:
  """Header of `path` (no samples read); AudioError if it is missing, empty or unreadable."""
  _check_file(path)
  try:
    info = sf.info(path)
  except (sf.LibsndfileError, RuntimeError) as e:
    raise AudioError(f"audio file {path} cannot be read ({e}); re-extract or re-download it",
                     "unreadable file") from e
  if info.frames <= 0:
    raise AudioError(f"audio file {path} holds no samples (header says 0 frames)", "empty file")
  return AudioInfo(int(info.samplerate), int(info.frames), int(info.channels))


def resample(x: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
  """Resamples mono `x` with librosa's soxr_hq; returns float32."""
  if orig_sr == target_sr:
    return np.asarray(x, np.float32)
  import librosa  # local import: librosa pulls numba, slow to import
  return librosa.resample(np.asarray(x, np.float32), orig_sr=orig_sr, target_sr=target_sr,
                          res_type="soxr_hq").astype(np.float32)


def load_wav(path: str, sample_rate: int) -> np.ndarray:
  """Mono float32 samples of `path` at `sample_rate` (channels averaged, resampled if needed)."""
  _check_file(path)
  try:
    x, sr = sf.read(path, dtype="float32", always_2d=True)
  except (sf.LibsndfileError, RuntimeError) as e:
    raise AudioError(f"audio file {path} cannot be read ({e}); re-extract or re-download it",
                     "unreadable file") from e
  if x.shape[0] == 0:
    raise AudioError(f"audio file {path} holds no samples", "empty file")
  x = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
  return resample(x, int(sr), int(sample_rate))


def normalize(x: np.ndarray, eps: float = 1e-8) -> np.ndarray:
  """Zero mean, unit variance; a silent (constant) signal comes back as zeros."""
  chex.assert_rank(x, 1)
  x = np.asarray(x, np.float64)
  centred = x - x.mean()
  std = centred.std()
  return (centred / std if std > eps else np.zeros_like(centred)).astype(np.float32)


def fix_length(x: np.ndarray, n: int) -> np.ndarray:
  """Cuts or zero-pads axis 0 of `x` to exactly `n` entries."""
  if n < 0:
    raise ValueError(f"fix_length: length {n} must be >= 0")
  if len(x) >= n:
    return x[:n]
  pad = np.zeros((n - len(x),) + x.shape[1:], x.dtype)
  return np.concatenate([x, pad], axis=0)
