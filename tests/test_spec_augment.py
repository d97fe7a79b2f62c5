"""SpecAugment-style masking: masks inside the limits and the valid frames, reproducible."""

import ml_collections
import numpy as np
import pytest

from jaxser.data.spec_augment import SpecAugment


def _batch():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(4, 50, 20)).astype(np.float32) + 5.0  # no entry is 0 by chance
  length = np.asarray([50, 30, 12, 1], np.int32)
  x[np.arange(50)[None, :] >= length[:, None]] = 0.0
  return np.asarray([b"a/seg0", b"a/seg1", b"b/seg0", b"c/seg0"]), x, length


def test_masks_stay_inside_their_widths_and_the_valid_frames():
  ids, x, length = _batch()
  aug = SpecAugment(dict(freq_masks=2, freq_width=6, time_masks=2, time_width=8), seed=1)
  out = aug(ids, x, length, epoch=0)
  assert out.shape == x.shape and out.dtype == np.float32
  masked = out != x
  assert np.all(out[masked] == 0.0)
  for b, n in enumerate(length):
    assert not masked[b, n:].any()  # padding untouched (already zero)
    valid = out[b, :n]
    dead_bands = np.flatnonzero((valid == 0).all(axis=0))
    dead_frames = np.flatnonzero((valid == 0).all(axis=1))
    if len(dead_frames) < n:  # some frame survives: bands are at most 2 masks of <= 6
      assert len(dead_bands) <= 12
    if len(dead_bands) < x.shape[2]:
      assert len(dead_frames) <= min(16, n)
  assert masked.any()


def test_masks_are_reproducible_per_epoch_and_example():
  ids, x, length = _batch()
  cfg = ml_collections.ConfigDict(dict(freq_masks=1, freq_width=8, time_masks=1, time_width=10))
  aug = SpecAugment(cfg, seed=3)
  np.testing.assert_array_equal(aug(ids, x, length, 2), aug(ids, x, length, 2))
  assert not np.array_equal(aug(ids, x, length, 2), aug(ids, x, length, 3))
  # An example's mask depends on its id, not on its place in the batch.
  swapped = aug(ids[::-1], x[::-1], length[::-1], 2)[::-1]
  np.testing.assert_array_equal(swapped, aug(ids, x, length, 2))
  none = SpecAugment(dict(freq_masks=0, time_masks=0), seed=3)
  np.testing.assert_array_equal(none(ids, x, length, 0), x)


def test_bad_settings_and_shapes_are_errors():
  with pytest.raises(ValueError, match="unknown settings"):
    SpecAugment(dict(freq_mask=2), seed=0)
  ids, x, length = _batch()
  with pytest.raises(ValueError, match=r"\[batch, frames, features\]"):
    SpecAugment({}, seed=0)(ids, x[:, :, 0], length, 0)
