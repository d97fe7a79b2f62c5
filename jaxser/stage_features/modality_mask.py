"""Masked training of COGMEN (Muaz et al.): `stages.<name>.modality_mask`, a training-batch
augmenter for `dialogue` inputs.

Each training batch picks one case: no mask (`p_none`), every utterance's first stream masked
(`p_first`: "all audio masked"), every utterance's second stream masked (`p_second`: "all
video masked"), or random masking (`p_random`): for each stream on its own, every utterance
starts a mask with probability `start_prob`, covering it and the next `length - 1` utterances
of its dialogue (`lengths` per stream overrides `length`). Masked means the stream's columns
set to 0. `streams` names the two streams ("av": audio first, video second).

The draw comes from a generator seeded by (seed, epoch, the batch's ids), so a resumed run
sees the same masks. Where the paper is silent or the reference code
(m-muaz/Cogmen_SLT, branch nap-masked_training, cogmen/generate_masks.py) differs:
- the reference has no "no mask" case: it fully masks audio with pmaf, video with pmvf and
  masks at random otherwise; the paper's 0.1 / 0.3 / 0.3 / 0.3 is followed here;
- its random masking zeroes random *feature dimensions* (a mask over the audio and video
  widths, broadcast over utterances); the paper describes masks over utterances, followed
  here; `unit="feature"` gives the reference's (start_prob per feature, `length` features).
"""

from __future__ import annotations

import zlib

import numpy as np

from jaxser.errors import UserError

DEFAULTS = dict(p_none=0.1, p_first=0.3, p_second=0.3, p_random=0.3, start_prob=0.2,
                length=1, lengths=None, streams="av", unit="utterance")
CASES = ("none", "first", "second", "random")


class ModalityMask:
  """`(ids, x [B, T, D], length [B], epoch) -> masked x`, one case per batch."""

  def __init__(self, cfg, seed: int, streams, where: str = "modality_mask"):
    cfg = {**DEFAULTS, **dict(cfg)}
    unknown = set(cfg) - set(DEFAULTS)
    if unknown:
      raise UserError(f"{where}: unknown settings {sorted(unknown)}; use {sorted(DEFAULTS)}")
    self.probs = np.asarray([cfg[f"p_{c}"] for c in CASES], np.float64)
    if (self.probs < 0).any() or abs(self.probs.sum() - 1) > 1e-6:
      raise UserError(f"{where}: p_none, p_first, p_second, p_random must be >= 0 and sum to 1 "
                      f"(now {self.probs.tolist()})")
    columns, start = {}, 0
    for letter, width in streams or ():
      columns[letter] = slice(start, start + width)
      start += width
    if len(cfg["streams"]) != 2 or any(m not in columns for m in cfg["streams"]):
      raise UserError(f"{where}.streams={cfg['streams']!r}: name two streams of the stage's "
                      f"input (it has {sorted(columns) or 'none: use input kind dialogue'})")
    if cfg["unit"] not in ("utterance", "feature"):
      raise UserError(f"{where}.unit={cfg['unit']!r}: choose 'utterance' or 'feature'")
    self.columns = [columns[m] for m in cfg["streams"]]
    lengths = cfg["lengths"] or (cfg["length"], cfg["length"])
    self.lengths = tuple(int(n) for n in lengths)
    self.start_prob, self.unit, self.seed = float(cfg["start_prob"]), cfg["unit"], seed

  def draw(self, ids, epoch: int):
    """(case, generator for the random masks) of the batch `ids` in `epoch`."""
    key = zlib.crc32("\n".join(i.decode() if isinstance(i, bytes) else str(i)
                               for i in ids).encode())
    rng = np.random.default_rng([self.seed, epoch, key])
    case = CASES[rng.choice(len(CASES), p=self.probs)]
    return case, rng

  def _spans(self, rng, n: int, length: int) -> np.ndarray:
    """keep [n]: False at every position a mask (started with start_prob) covers."""
    starts = np.flatnonzero(rng.random(n) < self.start_prob)
    keep = np.ones(n, bool)
    for s in starts:
      keep[s:s + length] = False
    return keep

  def __call__(self, ids, x: np.ndarray, length: np.ndarray, epoch: int) -> np.ndarray:
    out = np.array(x, np.float32, copy=True)
    case, rng = self.draw(ids, epoch)
    if case in ("first", "second"):
      out[..., self.columns[CASES.index(case) - 1]] = 0.0
    elif case == "random":
      for cols, n in zip(self.columns, self.lengths):
        if self.unit == "feature":
          width = cols.stop - cols.start
          out[..., cols] *= self._spans(rng, width, n)
          continue
        for b in range(len(out)):  # masks run inside each dialogue's utterances
          keep = self._spans(rng, int(length[b]), n)
          out[b, :int(length[b]), cols] *= keep[:, None]
    return out
