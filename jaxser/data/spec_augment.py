"""SpecAugment-style masking of training features (Park et al., 2019), without time warping.

`stages.<name>.spec_augment = dict(freq_masks=2, freq_width=8, time_masks=2, time_width=20)`:
each training example, each epoch, gets `freq_masks` bands of 0..`freq_width` adjacent
features and `time_masks` spans of 0..`time_width` frames (inside its valid frames) set to
zero, the mean of standardised features. Widths and positions are drawn from a generator
seeded by (seed, epoch, example id), so a resumed run sees the same masks.
"""

from __future__ import annotations

import zlib

import numpy as np

SETTINGS = ("freq_masks", "freq_width", "time_masks", "time_width")


class SpecAugment:
  """`(ids, x [B, T, F], length [B], epoch) -> masked x`, deterministic in (seed, epoch, id)."""

  def __init__(self, cfg, seed: int, where: str = "spec_augment"):
    unknown = set(cfg) - set(SETTINGS)
    if unknown:
      raise ValueError(f"{where}: unknown settings {sorted(unknown)}; use {list(SETTINGS)}")
    self.freq_masks, self.freq_width = int(cfg.get("freq_masks", 2)), int(cfg.get("freq_width", 8))
    self.time_masks, self.time_width = int(cfg.get("time_masks", 2)), int(cfg.get("time_width", 20))
    self.seed = seed

  def __call__(self, ids, x: np.ndarray, length: np.ndarray, epoch: int) -> np.ndarray:
    if x.ndim != 3:
      raise ValueError(f"spec_augment masks [batch, frames, features] inputs; got {x.shape}")
    out = np.array(x, np.float32, copy=True)
    num_features = x.shape[2]
    for b, raw in enumerate(ids):
      example = raw.decode() if isinstance(raw, bytes) else str(raw)
      rng = np.random.default_rng([self.seed, epoch, zlib.crc32(example.encode())])
      frames = int(length[b])
      for _ in range(self.freq_masks):
        width = int(rng.integers(0, min(self.freq_width, num_features) + 1))
        start = int(rng.integers(0, num_features - width + 1))
        out[b, :frames, start:start + width] = 0.0
      for _ in range(self.time_masks):
        width = int(rng.integers(0, min(self.time_width, frames) + 1))
        start = int(rng.integers(0, frames - width + 1))
        out[b, start:start + width, :] = 0.0
    return out
