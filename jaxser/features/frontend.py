"""Input front ends in jnp: raw audio [B, N] -> a stage's model input, inside a traced graph.

The NumPy features (`audio.normalize`, `fbank.logfbank` with per-utterance normalisation, as
`data.inputs` builds them) written with jnp ops that jax2tf and the TFLite converter lower to
plain TensorFlow / TFLite ops (TFLite's RFFT2D for the spectrum: `nfft` is a power of two),
so an exported model takes raw audio. The mel matmul uses full float32 precision: NumPy's
float64 features are what these are checked against (tests/test_predict_export.py).
"""

from __future__ import annotations

import math
from typing import Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxser.features import fbank, whisper_mel

HIGHEST = jax.lax.Precision.HIGHEST
KINDS = ("waveform", "logfbank")


def normalize(x: jax.Array, eps: float = 1e-8) -> jax.Array:
  """Zero mean, unit variance per row of [B, N], a silent row as zeros (`audio.normalize`)."""
  chex.assert_rank(x, 2)
  centred = x - x.mean(axis=1, keepdims=True)
  std = jnp.sqrt(jnp.mean(centred * centred, axis=1, keepdims=True))
  return jnp.where(std > eps, centred / jnp.where(std > eps, std, 1.0), 0.0)


def logfbank(x: jax.Array, sample_rate: int, num_filters: int = 40, win_len: float = 0.04,
             hop: float = 0.01, nfft: int | None = None, preemph: float = 0.97,
             lowfreq: float = 0.0, highfreq: float | None = None) -> jax.Array:
  """Log mel filterbank energies [B, frames, num_filters] of rows [B, N] (`fbank.logfbank`,
  same framing, filters and eps)."""
  chex.assert_rank(x, 2)
  n = x.shape[1]
  frame_len = fbank._round_half_up(win_len * sample_rate)
  frame_hop = fbank._round_half_up(hop * sample_rate)
  if nfft is None:
    nfft = 1 << max(0, (frame_len - 1).bit_length())
  x = jnp.concatenate([x[:, :1], x[:, 1:] - preemph * x[:, :-1]], axis=1)
  num_frames = 1 if n <= frame_len else 1 + int(math.ceil((n - frame_len) / frame_hop))
  x = jnp.pad(x, ((0, 0), (0, (num_frames - 1) * frame_hop + frame_len - n)))
  index = np.arange(frame_len)[None, :] + frame_hop * np.arange(num_frames)[:, None]
  frames = x[:, index]  # [B, frames, frame_len]
  # rfft with n < frame_len truncates each frame, exactly as the reference does.
  power = jnp.square(jnp.abs(jnp.fft.rfft(frames, n=nfft))) / nfft
  filters = fbank.mel_filterbank(num_filters, nfft, sample_rate, lowfreq, highfreq)
  feat = jnp.matmul(power, jnp.asarray(filters.T, jnp.float32), precision=HIGHEST)
  feat = jnp.where(feat == 0, np.finfo(np.float64).eps, feat)
  out = jnp.log(feat)
  chex.assert_shape(out, (x.shape[0], num_frames, num_filters))
  return out


def whisper_logmel(x: jax.Array, n_mels: int = 80) -> jax.Array:
  """Whisper log-mel [B, N // 160, n_mels] of 16 kHz rows [B, N], each row as
  `whisper_mel.log_mel(row, pad_to_30s=False)` (clamped at that row's own maximum - 8)."""
  chex.assert_rank(x, 2)
  n_fft, hop = whisper_mel.N_FFT, whisper_mel.HOP
  if x.shape[1] < hop:
    raise ValueError(f"whisper_logmel: {x.shape[1]} samples is shorter than one 10 ms hop ({hop})")
  padded = jnp.pad(x, ((0, 0), (n_fft // 2, n_fft // 2)), mode="reflect")
  num_frames = 1 + x.shape[1] // hop
  index = np.arange(n_fft)[None, :] + hop * np.arange(num_frames)[:, None]
  window = np.hanning(n_fft + 1)[:-1].astype(np.float32)  # periodic Hann, as the NumPy one
  power = jnp.square(jnp.abs(jnp.fft.rfft(padded[:, index] * window, axis=-1)))
  filters = jnp.asarray(whisper_mel.mel_filters(n_mels), jnp.float32)
  spec = jnp.log10(jnp.maximum(jnp.matmul(power, filters, precision=HIGHEST), 1e-10))[:, :-1]
  spec = jnp.maximum(spec, spec.max(axis=(1, 2), keepdims=True) - 8.0)
  out = (spec + 4.0) / 4.0
  chex.assert_shape(out, (x.shape[0], x.shape[1] // hop, n_mels))
  return out


def build(input_cfg, sample_rate: int, num_samples: int) -> Callable[[jax.Array],
                                                                     tuple[jax.Array, jax.Array]]:
  """`audio [B, num_samples] -> (x, length)`: the model input `data.inputs` makes of clips of
  `num_samples` samples, for input kinds in KINDS (ValueError for others).

  A logfbank input shorter than `max_seconds` is zero-padded to its frames as in training
  (`length` counts the clip's own); a longer one keeps all its frames.
  """
  kind = input_cfg["kind"]
  if kind == "waveform":
    norm = input_cfg.get("normalize", True)

    def waveform(audio):
      x = normalize(audio) if norm else audio
      return x, jnp.full((audio.shape[0],), num_samples, jnp.int32)

    return waveform
  if kind == "logfbank":
    hop = input_cfg.get("hop", 0.01)
    max_frames = int(round(input_cfg.get("max_seconds", 0.0) / hop))

    def log_filterbanks(audio):
      f = logfbank(audio, sample_rate, num_filters=input_cfg.get("num_filters", 40),
                   win_len=input_cfg.get("win_len", 0.04), hop=hop)
      if input_cfg.get("normalize", True):  # over the clip's frames, with the NumPy eps
        mean = f.mean(axis=1, keepdims=True)
        std = jnp.sqrt(jnp.mean(jnp.square(f - mean), axis=1, keepdims=True))
        f = (f - mean) / (std + 1e-5)
      frames = f.shape[1]
      f = jnp.pad(f, ((0, 0), (0, max(max_frames - frames, 0)), (0, 0)))
      return f, jnp.full((audio.shape[0],), frames, jnp.int32)

    return log_filterbanks
  raise ValueError(f"input kind {kind!r} has no jnp front end; one of {list(KINDS)}")
