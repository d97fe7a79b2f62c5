"""Input normalisation across examples: `config.stages.<name>.input.normalization`.

  none     (default) inputs as their kind makes them; a kind's own per-utterance
           `normalize` (waveform, logfbank) applies either way
  train    every feature dimension standardised with the mean / std of the fold's training
           examples only (fold-dependent: the Experiment applies it per fold)
  speaker  each speaker's examples standardised with that speaker's own mean / std over all
           of its examples, the test speaker's included: transductive (unlabelled test audio
           enters a statistic); fold-independent, applied when the inputs are built

Statistics are per last axis over the valid frames (`length`) of [N, L, F] sequences, per
dimension of [N, F] vectors, and one scalar over the valid samples of [N, S] waveforms.
Padded entries stay zero.
"""

from __future__ import annotations

import dataclasses

import chex
import numpy as np

from jaxser.errors import UserError

MODES = ("none", "train", "speaker")


def mode(input_cfg, stage: str) -> str:
  """The stage's normalisation mode; an absent setting is "none" (and hashes as before)."""
  value = input_cfg.get("normalization", "none")
  if value not in MODES:
    raise UserError(f"config.stages.{stage}.input.normalization={value!r} is unknown; "
                    f"choose one of {list(MODES)}")
  if value != "none" and input_cfg.get("kind") == "whisper_logmel":
    # Its padding is log-mel of silence, not zeros, and Whisper expects its own scaling.
    raise UserError(f"config.stages.{stage}.input.normalization={value!r}: Whisper's log-mel "
                    "is used as the encoder was trained on it; set it to 'none'")
  return value


def _as_frames(x: np.ndarray, time_axis: bool) -> np.ndarray:
  """x as [N, L, F]: vectors [N, F] -> [N, 1, F], waveforms [N, S] -> [N, S, 1]."""
  if not time_axis:
    return x[:, None, :]
  return x if x.ndim == 3 else x[..., None]


def _valid(inputs, rows) -> np.ndarray:
  """[len(rows), L] mask of the valid entries of `rows` (as `_as_frames` lays them out)."""
  if not inputs.time_axis:
    return np.ones((len(rows), 1), bool)
  return np.arange(inputs.x.shape[1]) < inputs.length[rows, None]


def _check(inputs) -> None:
  chex.assert_rank(inputs.x, {2, 3})
  chex.assert_shape(inputs.length, (inputs.x.shape[0],))
  if np.issubdtype(inputs.x.dtype, np.integer):
    raise UserError("input.normalization applies to audio features, not to token ids "
                    "(input kind tokens); set it to 'none' for that stage")


def statistics(inputs, rows) -> tuple[np.ndarray, np.ndarray]:
  """Mean and std [F] (float64) over the valid entries of the examples at `rows`."""
  _check(inputs)
  rows = np.asarray(rows, np.int64)
  if not len(rows):
    raise ValueError("input normalisation: no examples to take statistics from")
  frames = _as_frames(inputs.x[rows], inputs.time_axis)[_valid(inputs, rows)].astype(np.float64)
  return frames.mean(0), frames.std(0)


def _standardized(inputs, rows, mean, std) -> np.ndarray:
  """x of the examples at `rows` standardised (float32), padded entries zero."""
  x = inputs.x[rows]
  # Dimensions constant up to float32 rounding are centred only, not blown up.
  scale = np.where(std > 1e-12 + 1e-7 * np.abs(mean), std, 1.0)
  z = (_as_frames(x, inputs.time_axis) - mean) / scale
  z = np.where(_valid(inputs, rows)[..., None], z, 0.0)
  return z.reshape(x.shape).astype(np.float32)


def by_train(inputs, train_ids):
  """A copy of `inputs` standardised with the statistics of the examples `train_ids`."""
  mean, std = statistics(inputs, inputs.rows(train_ids))
  return dataclasses.replace(inputs, x=_standardized(inputs, np.arange(len(inputs.ids)), mean,
                                                      std))


def by_speaker(inputs, speakers: np.ndarray):
  """A copy of `inputs` with each speaker's examples standardised by that speaker's statistics
  (`speakers`: [N], the speaker of every example)."""
  chex.assert_shape(speakers, (len(inputs.ids),))
  x = np.zeros(inputs.x.shape, np.float32)
  for s in np.unique(speakers):
    rows = np.flatnonzero(speakers == s)
    x[rows] = _standardized(inputs, rows, *statistics(inputs, rows))
  return dataclasses.replace(inputs, x=x)
