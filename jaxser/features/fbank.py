"""Log mel filterbank energies, following python_speech_features' `logfbank` step for step.

Steps: pre-emphasis y[0] = x[0], y[n] = x[n] - a x[n-1]; framing with round-half-up frame
and hop lengths, one frame for a signal no longer than a window, otherwise
1 + ceil((len - win) / hop) frames with the tail zero-padded; rectangular window; power
spectrum |rfft(frame, nfft)|^2 / nfft; triangular mel filters on fft bins
floor((nfft + 1) * mel2hz(m) / sample_rate) for nfilt + 2 points evenly spaced in mel;
energies equal to 0 replaced by float eps; natural log.

One deliberate difference: python_speech_features defaults to nfft=512, which silently
truncates a 0.04 s window at 16 kHz (640 samples). Here `nfft=None` means the next power
of two >= the window length (1024 for that case); pass `nfft=512` to get the package's
exact output.
"""

from __future__ import annotations

import decimal
import math

import chex
import numpy as np


def _round_half_up(x: float) -> int:
  # Decimal of the float itself, as the reference does: float rounding of x + 0.5 can differ.
  return int(decimal.Decimal(x).quantize(decimal.Decimal("1"), rounding=decimal.ROUND_HALF_UP))


def hz_to_mel(hz):
  return 2595.0 * np.log10(1.0 + np.asarray(hz, np.float64) / 700.0)


def mel_to_hz(mel):
  return 700.0 * (10.0 ** (np.asarray(mel, np.float64) / 2595.0) - 1.0)


def mel_filterbank(num_filters: int, nfft: int, sample_rate: int, lowfreq: float = 0.0,
                   highfreq: float | None = None) -> np.ndarray:
  """Triangular filters [num_filters, nfft // 2 + 1] on floor()-rounded fft bin points."""
  highfreq = highfreq or sample_rate / 2
  if highfreq > sample_rate / 2:
    raise ValueError(f"highfreq={highfreq} is above the Nyquist frequency {sample_rate / 2}")
  mels = np.linspace(hz_to_mel(lowfreq), hz_to_mel(highfreq), num_filters + 2)
  bins = np.floor((nfft + 1) * mel_to_hz(mels) / sample_rate)
  k = np.arange(nfft // 2 + 1, dtype=np.float64)[None, :]
  left, centre, right = bins[:-2, None], bins[1:-1, None], bins[2:, None]
  with np.errstate(divide="ignore", invalid="ignore"):
    rising = np.where((k >= left) & (k < centre), (k - left) / (centre - left), 0.0)
    falling = np.where((k >= centre) & (k < right), (right - k) / (right - centre), 0.0)
  return rising + falling


def frame_signal(x: np.ndarray, frame_len: int, hop: int) -> np.ndarray:
  """[num_frames, frame_len] frames; the last one zero-padded (python_speech_features framesig)."""
  n = len(x)
  num_frames = 1 if n <= frame_len else 1 + int(math.ceil((n - frame_len) / hop))
  padded = np.zeros((num_frames - 1) * hop + frame_len, x.dtype)
  padded[:n] = x
  idx = np.arange(frame_len)[None, :] + hop * np.arange(num_frames)[:, None]
  return padded[idx]


def logfbank(signal: np.ndarray, sample_rate: int, num_filters: int = 40, win_len: float = 0.04,
             hop: float = 0.01, nfft: int | None = None, preemph: float = 0.97,
             lowfreq: float = 0.0, highfreq: float | None = None) -> np.ndarray:
  """Log mel filterbank energies [num_frames, num_filters] (float32) of a mono signal."""
  chex.assert_rank(signal, 1)
  x = np.asarray(signal, np.float64)
  if len(x) == 0:
    raise ValueError("logfbank: empty signal")
  frame_len = _round_half_up(win_len * sample_rate)
  frame_hop = _round_half_up(hop * sample_rate)
  if nfft is None:
    nfft = 1 << max(0, (frame_len - 1).bit_length())
  x = np.append(x[0], x[1:] - preemph * x[:-1])
  frames = frame_signal(x, frame_len, frame_hop)
  # rfft with n < frame_len truncates each frame, exactly as the reference does.
  power = np.square(np.abs(np.fft.rfft(frames, nfft))) / nfft
  feat = power @ mel_filterbank(num_filters, nfft, sample_rate, lowfreq, highfreq).T
  feat = np.where(feat == 0, np.finfo(np.float64).eps, feat)
  out = np.log(feat).astype(np.float32)
  chex.assert_shape(out, (frames.shape[0], num_filters))
  return out
