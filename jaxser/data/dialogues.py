"""Per-dialogue records for conversation-level models (COGMEN) and padding them into a batch."""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np

# Modality letters as COGMEN's --modalities flag spells them; Dataset.padding concatenates the
# chosen ones in the order a, t, v whatever order the flag lists them in.
MODALITIES = {"a": "audio", "t": "text", "v": "visual"}


@dataclasses.dataclass(frozen=True)
class Dialogue:
  """One dialogue: per-utterance features per modality ([T, D] float32), speakers, labels."""

  id: str
  split: str  # "train" | "dev" | "test"
  speakers: np.ndarray  # [T] int32, 0..n_speakers-1
  labels: np.ndarray  # [T] int32 class ids
  features: Mapping[str, np.ndarray]  # "audio" / "text" / "visual" -> [T, D]
  sentences: tuple[str, ...] = ()
  utterance_ids: tuple[str, ...] = ()

  def __len__(self) -> int:
    return len(self.labels)


def concat_features(d: Dialogue, modalities: str = "atv") -> np.ndarray:
  """[T, sum D]: the chosen modalities concatenated in COGMEN's a, t, v order."""
  unknown = set(modalities) - set(MODALITIES)
  if not modalities or unknown:
    raise ValueError(f"modalities={modalities!r}: use letters from 'atv'")
  missing = [MODALITIES[m] for m in "atv" if m in modalities and MODALITIES[m] not in d.features]
  if missing:
    raise ValueError(f"dialogue {d.id!r} has no {missing} features (it has {sorted(d.features)})")
  return np.concatenate([d.features[MODALITIES[m]] for m in "atv" if m in modalities], axis=-1)


def pad_dialogues(dialogues: Sequence[Dialogue], modalities: str = "atv",
                  max_len: int | None = None) -> dict[str, np.ndarray]:
  """Zero-padded batch: x [B, T, D], speakers [B, T], labels [B, T] (-1 on padding), lengths [B].

  `max_len` fixes T (default: the longest dialogue) so batches can share one compiled shape.
  """
  lengths = np.array([len(d) for d in dialogues], np.int32)
  t = int(lengths.max()) if max_len is None else max_len
  if lengths.max() > t:
    raise ValueError(f"pad_dialogues: a dialogue has {lengths.max()} utterances > max_len={t}")
  feats = [concat_features(d, modalities) for d in dialogues]
  x = np.zeros((len(dialogues), t, feats[0].shape[-1]), np.float32)
  speakers = np.zeros((len(dialogues), t), np.int32)
  labels = np.full((len(dialogues), t), -1, np.int32)
  for i, (d, f) in enumerate(zip(dialogues, feats)):
    x[i, :len(d)], speakers[i, :len(d)], labels[i, :len(d)] = f, d.speakers, d.labels
  return {"x": x, "speakers": speakers, "labels": labels, "lengths": lengths}
