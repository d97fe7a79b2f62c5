"""Waveform I/O and shaping: read a wav as mono float32 at a sample rate, normalise, fix length.

What an audio file may hold, and what happens (`probe` applies the rules the header shows,
`check` and `load_wav` all of them, so a corpus scan and a later read agree):

  accepted  any sample rate, resampled with soxr_hq (8 kHz audio comes up without the band
            above 4 kHz it never had; 48 kHz comes down); any number of channels, averaged;
            clipped samples, kept (clipping distorts the speech but keeps its emotion, and
            refusing clipped clips would refuse mostly loud, high-arousal ones); any length
            (a 10-minute file is read whole, ~40 MB as float32 at 16 kHz; waveform inputs
            keep their first `max_seconds`, functionals describe the whole clip).
  rejected  AudioError naming the file, its `reason` one of REASONS:
            "missing file"; "empty file" (0 bytes, or a header with no samples);
            "unreadable file" (not audio, or a header cut short); "truncated file" (the
            data chunk holds less than its header promises: a copy cut short, whatever is
            left); "too short" (under MIN_SECONDS: openSMILE's 60 ms pitch window gives
            NaN features below it, and no utterance is that short); "non-finite samples"
            (NaN/inf in a float WAV: they poison every feature, and are not silence);
            "silent file" (peak under SILENCE_PEAK, -80 dBFS: nothing to classify, and
            `normalize` would turn it into zeros).
"""

from __future__ import annotations

import dataclasses
import os
import struct

import chex
import numpy as np
import soundfile as sf


from jaxser.errors import UserError

REASONS = ("missing file", "empty file", "unreadable file", "truncated file", "too short",
           "non-finite samples", "silent file")
# openSMILE's longest window (eGeMAPS / ComParE pitch) is 60 ms: shorter clips give NaN
# functionals. The margin keeps a clip above it after resampling rounds its length.
MIN_SECONDS = 0.07
SILENCE_PEAK = 1e-4  # -80 dBFS: under 4 steps of 16-bit PCM
_BLOCK_FRAMES = 1 << 20  # `check` reads long files in blocks of this many frames


class AudioError(UserError):
  """An unusable audio file; `reason` is one of REASONS, `path` the file."""

  def __init__(self, message: str, reason: str, path: str = ""):
    super().__init__(message)
    self.reason = reason
    self.path = path


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
    raise AudioError(f"audio file {path} does not exist", "missing file", path)
  if os.path.getsize(path) == 0:
    raise AudioError(f"audio file {path} is empty (0 bytes)", "empty file", path)


def _unreadable(path: str, e: Exception) -> AudioError:
  return AudioError(f"audio file {path} cannot be read ({e}); re-extract or re-download it",
                    "unreadable file", path)


def _data_chunk(path: str) -> tuple[int, int] | None:
  """(bytes the header of a RIFF WAV promises in its data chunk, bytes the file holds there),
  or None for another format or a size left open (0 or 0xFFFFFFFF, as streaming writers do).

  libsndfile reads a cut WAV without complaint, counting only the frames present, so the
  header is compared here.
  """
  size = os.path.getsize(path)
  with open(path, "rb") as f:
    head = f.read(12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
      return None
    order = "<" if head[:4] == b"RIFF" else ">"
    pos = 12
    while pos + 8 <= size:
      f.seek(pos)
      chunk, length = struct.unpack(order + "4sI", f.read(8))
      if chunk == b"data":
        return None if length in (0, 0xFFFFFFFF) else (length, size - pos - 8)
      pos += 8 + length + (length & 1)  # chunks are padded to an even length
  return None


def probe(path: str) -> AudioInfo:
  """Header of `path` (no samples read); AudioError if it is missing, empty, unreadable, cut
  short or too short (see the module docstring)."""
  _check_file(path)
  try:
    info = sf.info(path)
  except (sf.LibsndfileError, RuntimeError) as e:
    raise _unreadable(path, e) from e
  if info.frames <= 0:
    raise AudioError(f"audio file {path} holds no samples (header says 0 frames)", "empty file",
                     path)
  out = AudioInfo(int(info.samplerate), int(info.frames), int(info.channels))
  chunk = _data_chunk(path)
  if chunk is not None and chunk[0] > chunk[1]:
    promised = out.duration * chunk[0] / max(chunk[1], 1)
    raise AudioError(f"audio file {path} is cut short: its header promises {promised:.3f} s of "
                     f"audio, the file holds {out.duration:.3f} s; re-extract or re-download it",
                     "truncated file", path)
  if out.duration < MIN_SECONDS:
    raise AudioError(f"audio file {path} holds {out.duration:.3f} s of audio, less than the "
                     f"{MIN_SECONDS} s features need (openSMILE's pitch window is 60 ms)",
                     "too short", path)
  return out


def _check_samples(path: str, non_finite: int, total: int, peak: float):
  if non_finite:
    raise AudioError(f"audio file {path} holds {non_finite} NaN or infinite samples (of "
                     f"{total}); re-export it from its source", "non-finite samples", path)
  if peak < SILENCE_PEAK:
    raise AudioError(f"audio file {path} is silent (peak amplitude {peak:.2g}, under "
                     f"{SILENCE_PEAK:g}); there is no speech in it", "silent file", path)


def check(path: str) -> AudioInfo:
  """`probe` plus the rules that need the samples (NaN/inf, silence), read in blocks so that
  a long file costs no memory; the header as AudioInfo."""
  info = probe(path)
  non_finite, peak = 0, 0.0
  try:
    for block in sf.blocks(path, blocksize=_BLOCK_FRAMES, dtype="float32", always_2d=True):
      finite = np.isfinite(block)
      non_finite += int(block.size - np.count_nonzero(finite))
      peak = max(peak, float(np.max(np.abs(block, where=finite, out=np.zeros_like(block)),
                                    initial=0.0)))
  except (sf.LibsndfileError, RuntimeError) as e:
    raise _unreadable(path, e) from e
  _check_samples(path, non_finite, info.frames * info.channels, peak)
  return info


def resample(x: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
  """Resamples mono `x` with librosa's soxr_hq; returns float32."""
  if orig_sr == target_sr:
    return np.asarray(x, np.float32)
  import librosa  # local import: librosa pulls numba, slow to import
  return librosa.resample(np.asarray(x, np.float32), orig_sr=orig_sr, target_sr=target_sr,
                          res_type="soxr_hq").astype(np.float32)


def load_wav(path: str, sample_rate: int) -> np.ndarray:
  """Mono float32 samples of `path` at `sample_rate` (channels averaged, resampled if needed);
  AudioError naming the file for what the module docstring rejects."""
  probe(path)
  try:
    x, sr = sf.read(path, dtype="float32", always_2d=True)
  except (sf.LibsndfileError, RuntimeError) as e:
    raise _unreadable(path, e) from e
  if x.shape[0] == 0:
    raise AudioError(f"audio file {path} holds no samples", "empty file", path)
  finite = np.isfinite(x)
  _check_samples(path, int(x.size - np.count_nonzero(finite)), x.size,
                 float(np.max(np.abs(x, where=finite, out=np.zeros_like(x)), initial=0.0)))
  x = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
  return resample(x, int(sr), int(sample_rate))


def normalize(x: np.ndarray, eps: float = 1e-8) -> np.ndarray:
  """Zero mean, unit variance; a silent (constant) signal comes back as zeros. NaN/inf
  samples are an error: they are not silence (`load_wav` rejects files holding them)."""
  chex.assert_rank(x, 1)
  x = np.asarray(x, np.float64)
  bad = int(x.size - np.count_nonzero(np.isfinite(x)))
  if bad:
    raise ValueError(f"normalize: {bad} of {x.size} samples are NaN or infinite")
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
