"""Additive noise at an exact SNR, from recorded noise files or built-in generators.

SNR is the power of the whole clean utterance over the power of the scaled noise that is
added to it: 10 log10(sum clean^2 / sum (noisy - clean)^2). The noise is cut at a random
offset when it is longer than the utterance, and looped (from a random offset) when shorter.
Sources: a NOISEX-92-style folder with one long recording per noise type
(`NoiseBank.from_dir`), and generators white, pink (1/f power), brown (1/f^2 power) and
babble (sum of k random utterances of speakers other than the clean one, each at unit power).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Sequence

import chex
import numpy as np

from jaxser.features import audio

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


def _fit(noise: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
  """`n` samples of `noise` from a random offset, looping around its end when it is short."""
  m = len(noise)
  if m == 0:
    raise ValueError("noise signal is empty")
  offset = int(rng.integers(0, m - n + 1)) if m >= n else int(rng.integers(0, m))
  return noise[(offset + np.arange(n)) % m]


def _power(x: np.ndarray) -> float:
  return float(np.mean(np.square(np.asarray(x, np.float64))))


def white(n: int, rng: np.random.Generator) -> np.ndarray:
  return rng.standard_normal(n)


def _coloured(n: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
  """Gaussian noise whose power falls as 1/f^exponent (DC removed)."""
  spec = np.fft.rfft(rng.standard_normal(n))
  f = np.fft.rfftfreq(n)
  gain = np.zeros_like(f)
  gain[1:] = f[1:] ** (-exponent / 2)
  x = np.fft.irfft(spec * gain, n)
  if not np.any(x):  # n < 3 leaves only DC and Nyquist; fall back to white
    return white(n, rng)
  return x


def pink(n: int, rng: np.random.Generator) -> np.ndarray:
  return _coloured(n, rng, 1.0)


def brown(n: int, rng: np.random.Generator) -> np.ndarray:
  return _coloured(n, rng, 2.0)


GENERATORS: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "white": white, "pink": pink, "brown": brown}


def babble(n: int, pool: Sequence[np.ndarray], k: int, rng: np.random.Generator) -> np.ndarray:
  """Sum of `k` distinct random utterances of `pool`, each at unit power, fitted to `n` samples."""
  if k < 1 or len(pool) < k:
    raise ValueError(f"babble needs k={k} >= 1 utterances but the pool holds {len(pool)}")
  out = np.zeros(n)
  for i in rng.choice(len(pool), size=k, replace=False):
    u = np.asarray(pool[i], np.float64)
    p = _power(u)
    if p == 0:
      raise ValueError(f"babble: pool utterance {i} is silent")
    out += _fit(u / np.sqrt(p), n, rng)
  return out


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float,
               rng: np.random.Generator) -> np.ndarray:
  """`clean` plus `noise` (cut or looped to its length) scaled to `snr_db`; float32."""
  chex.assert_rank(clean, 1)
  chex.assert_rank(noise, 1)
  x = np.asarray(clean, np.float64)
  n = _fit(np.asarray(noise, np.float64), len(x), rng)
  p_clean, p_noise = _power(x), _power(n)
  if p_clean == 0:
    raise ValueError("mix_at_snr: the clean utterance is silent, so its SNR is undefined")
  if p_noise == 0:
    raise ValueError("mix_at_snr: the noise segment is silent")
  scale = np.sqrt(p_clean / (p_noise * 10.0 ** (snr_db / 10.0)))
  return (x + scale * n).astype(np.float32)


def measured_snr(clean: np.ndarray, noisy: np.ndarray) -> float:
  """SNR in dB of `noisy` against `clean`, over the whole utterance."""
  chex.assert_equal_shape([clean, noisy])
  c = np.asarray(clean, np.float64)
  residual = np.asarray(noisy, np.float64) - c
  return float(10.0 * np.log10(np.sum(c ** 2) / np.sum(residual ** 2)))


def recording_files(path: str) -> dict[str, str]:
  """Noise name (file stem, lower case) -> file of the recordings in noise folder `path`,
  without reading them: `NoiseBank.from_dir`'s layout checks, cheap enough to run up front."""
  if not os.path.isdir(path):
    raise FileNotFoundError(
        f"noise directory {path} does not exist; expected a folder with one long recording "
        f"per noise type, e.g. {path}/babble.wav, {path}/factory1.wav (NOISEX-92 layout)")
  files = sorted(f for f in os.listdir(path)
                 if f.lower().endswith(AUDIO_SUFFIXES) and not f.startswith("."))
  if not files:
    raise FileNotFoundError(f"noise directory {path} holds no {'/'.join(AUDIO_SUFFIXES)} files")
  out = {}
  for f in files:
    name = os.path.splitext(f)[0].lower()
    if name in out:
      raise ValueError(f"noise directory {path}: two files are named {name!r}")
    out[name] = os.path.join(path, f)
  return out


@dataclasses.dataclass
class NoiseBank:
  """Named noise sources: recordings (name -> long signal), generators and babble.

  Babble draws from `babble_pool` (utterances with `babble_speakers`), leaving out the
  clean utterance's own speaker when `speaker` is given to `noise`/`mix`.
  """

  sample_rate: int
  recordings: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
  babble_pool: Sequence[np.ndarray] = ()
  babble_speakers: Sequence[str] = ()
  babble_k: int = 4

  @classmethod
  def from_dir(cls, path: str, sample_rate: int) -> "NoiseBank":
    """One recording per audio file of `path` (name = file stem, lower case), at `sample_rate`."""
    return cls(sample_rate, {name: audio.load_wav(f, sample_rate)
                             for name, f in recording_files(path).items()})

  def with_babble(self, waves: Sequence[np.ndarray], speakers: Sequence[str],
                  k: int = 4) -> "NoiseBank":
    """This bank plus babble drawn from `waves` (training utterances) of `speakers`."""
    if len(waves) != len(speakers):
      raise ValueError(f"with_babble: {len(waves)} waves but {len(speakers)} speakers")
    return dataclasses.replace(self, babble_pool=list(waves), babble_speakers=list(speakers),
                               babble_k=k)

  @property
  def names(self) -> list[str]:
    extra = ["babble"] if len(self.babble_pool) and "babble" not in self.recordings else []
    return sorted(self.recordings) + [g for g in GENERATORS if g not in self.recordings] + extra

  def noise(self, name: str, n: int, rng: np.random.Generator,
            speaker: str | None = None) -> np.ndarray:
    """`n` samples of noise `name`."""
    if name in self.recordings:
      return _fit(self.recordings[name], n, rng)
    if name in GENERATORS:
      return GENERATORS[name](n, rng)
    if name == "babble" and len(self.babble_pool):
      pool = [w for w, s in zip(self.babble_pool, self.babble_speakers)
              if speaker is None or s != speaker]
      return babble(n, pool, self.babble_k, rng)
    raise ValueError(f"noise {name!r} is unknown; choose one of {self.names}")

  def mix(self, clean: np.ndarray, name: str, snr_db: float, rng: np.random.Generator,
          speaker: str | None = None) -> np.ndarray:
    """`clean` with noise `name` added at `snr_db`."""
    return mix_at_snr(clean, self.noise(name, len(clean), rng, speaker), snr_db, rng)
