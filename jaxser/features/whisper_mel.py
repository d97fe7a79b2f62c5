"""Whisper's log-mel front end, equal to transformers' `WhisperFeatureExtractor`.

16 kHz audio -> (optionally zero-padded to 30 s) -> STFT (periodic Hann, 400 samples =
25 ms, hop 160 = 10 ms, centred with reflect padding) -> power -> 80 Slaney mel bands
(0-8 kHz) -> log10 (floor 1e-10) -> last frame dropped -> clamp at (max - 8) -> (x + 4) / 4.
Output is time-major [frames, n_mels]: 100 frames per second of audio (3000 for 30 s).
"""

from __future__ import annotations

import functools

import chex
import numpy as np

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
CHUNK_SECONDS = 30


@functools.lru_cache(maxsize=4)
def mel_filters(n_mels: int = 80, sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT) -> np.ndarray:
  """Slaney-normalised, Slaney-scale mel filters [n_fft // 2 + 1, n_mels] (float64)."""
  import librosa
  return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=0.0,
                             fmax=8000.0, htk=False, norm="slaney", dtype=np.float64).T


def log_mel(wave: np.ndarray, n_mels: int = 80, pad_to_30s: bool = True) -> np.ndarray:
  """Whisper log-mel [frames, n_mels] (float32) of a 16 kHz mono waveform.

  `pad_to_30s` pads (or cuts) the audio to 30 s as Whisper does (3000 frames); otherwise the
  clip keeps its length (len // 160 frames), and the clamp uses that clip's own maximum.
  """
  wave = np.asarray(wave, np.float64)
  chex.assert_rank(wave, 1)
  if pad_to_30s:
    n = CHUNK_SECONDS * SAMPLE_RATE
    wave = np.pad(wave[:n], (0, max(n - len(wave), 0)))
  if len(wave) < HOP:
    raise ValueError(f"log_mel: {len(wave)} samples is shorter than one 10 ms hop ({HOP})")
  padded = np.pad(wave, N_FFT // 2, mode="reflect")
  frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
  window = np.hanning(N_FFT + 1)[:-1]  # periodic Hann, as HF's window_function
  power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2
  spec = np.log10(np.maximum(power @ mel_filters(n_mels), 1e-10))[:-1]
  spec = np.maximum(spec, spec.max() - 8.0)
  return ((spec + 4.0) / 4.0).astype(np.float32)
