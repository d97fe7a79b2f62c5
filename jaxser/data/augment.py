"""On-the-fly additive noise for training batches (MLKD's noisy student input).

`stages.<name>.noise = dict(types=(...), snr_db=(...), dir="", babble_k=4)`: each training
utterance, each epoch, gets one noise type and one SNR drawn uniformly from the lists
(types=(): every noise on offer), with a generator seeded by (seed, epoch, utterance id),
so a resumed run sees the same noise.
Types are the built-in generators (white, pink, brown), "babble" (training utterances of
other speakers) and, with `dir`, the recordings of a NOISEX-92-style folder.
Only the valid samples are mixed; with `input.normalize` they are re-normalised after.
`noise.valid=True` mixes the validation clips too (one fixed draw per clip), so the best
epoch is chosen on the condition the stage trains on.
"""

from __future__ import annotations

import zlib

import numpy as np

from jaxser.features import audio, noise as noise_lib


class NoiseAugment:
  """`(ids, x [B, S], length [B], epoch) -> noisy x`, deterministic in (seed, epoch, id).

  `seed`: an int or a tuple of ints (the evaluation grid uses its own stream).
  """

  def __init__(self, cfg, inputs, train_ids, speaker_of: dict, sample_rate: int, seed,
               normalize: bool):
    self.snrs = tuple(float(s) for s in cfg.snr_db)
    if not self.snrs:
      raise ValueError("noise: give at least one SNR (noise.snr_db)")
    bank = (noise_lib.NoiseBank.from_dir(cfg.dir, sample_rate) if cfg.get("dir")
            else noise_lib.NoiseBank(sample_rate))
    # No types listed: every noise on offer (the folder's recordings, generators, babble).
    self.types = tuple(cfg.types) or tuple(dict.fromkeys(list(bank.names) + ["babble"]))
    if "babble" in self.types:
      rows = {k: i for i, k in enumerate(inputs.ids.tolist())}
      pool = [inputs.x[rows[i], :inputs.length[rows[i]]] for i in train_ids]
      bank = bank.with_babble(pool, [speaker_of[i] for i in train_ids], cfg.get("babble_k", 4))
    unknown = [t for t in self.types if t not in bank.names]
    if unknown:
      raise ValueError(f"stage noise.types {unknown} are unknown; available: {bank.names}")
    self.bank, self.speaker_of, self.seed, self.normalize = bank, speaker_of, seed, normalize

  def draw(self, utt_id: str, epoch: int) -> tuple[str, float, np.random.Generator]:
    """The noise type, SNR and generator of `utt_id` in `epoch`."""
    rng = np.random.default_rng([*np.atleast_1d(self.seed).tolist(), epoch,
                                 zlib.crc32(utt_id.encode())])
    return (self.types[rng.integers(len(self.types))], self.snrs[rng.integers(len(self.snrs))],
            rng)

  def __call__(self, ids, x: np.ndarray, length: np.ndarray, epoch: int) -> np.ndarray:
    out = np.array(x, np.float32, copy=True)
    for b, raw in enumerate(ids):
      utt_id = raw.decode() if isinstance(raw, bytes) else str(raw)
      kind, snr, rng = self.draw(utt_id, epoch)
      n = int(length[b])
      noisy = self.bank.mix(out[b, :n], kind, snr, rng, speaker=self.speaker_of.get(utt_id))
      out[b, :n] = audio.normalize(noisy) if self.normalize else noisy
    return out
