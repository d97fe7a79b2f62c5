"""Load COGMEN's IEMOCAP feature pickle (IEMOCAP_features{,_4}.pkl) into `Dialogue` records.

The file is the 9-tuple COGMEN's preprocess.py (get_iemocap) unpickles, with encoding="latin1"
(it was written by Python 2): video_ids, video_speakers, video_labels, video_text, video_audio,
video_visual, video_sentence, trainVids, test_vids. The first seven are dicts keyed by dialogue
id holding one entry per utterance (utterance ids; 'M'/'F'; int labels; 100-d text, 100-d
openSMILE audio and 512-d visual vectors; transcripts). The dev split is the first
int(0.1 * len(trainVids)) training dialogues, as in get_iemocap.

COGMEN's "t" modality is not the pickle's 100-d text vector: cogmen/Sample.py encodes each
transcript with SBERT (paraphrase-distilroberta-base-v1, 768-d). Pass `embed_sentences` to do
the same; without it `features["text"]` is the pickle's own text vector.
"""

from __future__ import annotations

import os
import pickle
from typing import Callable, Sequence

import numpy as np

from jaxser.data.dialogues import Dialogue
from jaxser.errors import UserError

FIELDS = ("video_ids", "video_speakers", "video_labels", "video_text", "video_audio",
          "video_visual", "video_sentence", "trainVids", "test_vids")
# COGMEN.__init__ / Coach.py label ids per dataset name.
CLASS_NAMES = {"iemocap": ("hap", "sad", "neu", "ang", "exc", "fru"),
               "iemocap_4": ("hap", "sad", "neu", "ang")}
SPEAKER_TO_IDX = {"M": 0, "F": 1}  # cogmen/Dataset.py
_FEATURES = {"text": "video_text", "audio": "video_audio", "visual": "video_visual"}


def load_cogmen_pickle(path: str, *, dev_fraction: float = 0.1,
                       embed_sentences: Callable[[Sequence[str]], np.ndarray] | None = None
                       ) -> dict[str, list[Dialogue]]:
  """{"train", "dev", "test"} -> dialogues in the file's order; raises UserError on bad content."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"COGMEN pickle {path} does not exist")
  try:
    with open(path, "rb") as f:
      data = pickle.load(f, encoding="latin1")
  except Exception as e:  # any unpickling failure is a bad file, whatever its type
    raise UserError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from e
  if not isinstance(data, (tuple, list)) or len(data) != len(FIELDS):
    got = type(data).__name__
    if hasattr(data, "__len__"):
      got += f" of length {len(data)}"
    raise UserError(f"{path}: expected a 9-tuple {FIELDS}, found a {got}")
  fields = dict(zip(FIELDS, data))
  for name in FIELDS[:7]:
    if not isinstance(fields[name], dict):
      raise UserError(f"{path}: {name} should be a dict keyed by dialogue id, "
                      f"found {type(fields[name]).__name__}")
  train_vids, test_vids = (_id_list(path, fields, n) for n in ("trainVids", "test_vids"))
  overlap = sorted(set(train_vids) & set(test_vids))
  if overlap:
    raise UserError(f"{path}: dialogues in both trainVids and test_vids: {overlap[:5]}")
  n_dev = int(len(train_vids) * dev_fraction)
  splits = {"train": train_vids[n_dev:], "dev": train_vids[:n_dev], "test": test_vids}
  out = {split: [_dialogue(path, fields, vid, split, embed_sentences) for vid in vids]
         for split, vids in splits.items()}
  _check_dims(path, [d for ds in out.values() for d in ds])
  return out


def _check_dims(path, dialogues):
  # Batching concatenates dialogues, so one modality must have one width in the whole file.
  for k in _FEATURES:
    dims = {d.features[k].shape[1]: d.id for d in dialogues}
    if len(dims) > 1:
      raise UserError(f"{path}: {k} features differ in width between dialogues: "
                      + ", ".join(f"{dim} in {vid!r}" for dim, vid in sorted(dims.items())))


def _id_list(path, fields, name) -> list:
  ids = fields[name]
  if isinstance(ids, (set, frozenset)):
    # COGMEN slices trainVids, so its pickles hold lists; a set (as in some DialogueRNN-era
    # pickles) has no order, so sort it to keep the dev split deterministic.
    ids = sorted(ids)
  if not isinstance(ids, (list, tuple, np.ndarray)):
    raise UserError(f"{path}: {name} should be a list of dialogue ids, found {type(ids).__name__}")
  return list(ids)


def _dialogue(path, fields, vid, split, embed_sentences) -> Dialogue:
  where = f"{path}: dialogue {vid!r}"
  for name in FIELDS[:7]:
    if vid not in fields[name]:
      raise UserError(f"{where} is listed in {'test_vids' if split == 'test' else 'trainVids'} "
                      f"but missing from {name}")
  n = len(fields["video_labels"][vid])
  if n == 0:
    raise UserError(f"{where} has no utterances")
  for name in FIELDS[:7]:
    if len(fields[name][vid]) != n:
      raise UserError(f"{where}: {name} has {len(fields[name][vid])} entries "
                      f"but video_labels has {n}")
  speakers = fields["video_speakers"][vid]
  bad = [s for s in speakers if not isinstance(s, str) or s not in SPEAKER_TO_IDX]
  if bad:
    raise UserError(f"{where}: video_speakers must be 'M'/'F' per utterance, found {bad[0]!r}")
  labels = np.asarray(fields["video_labels"][vid])
  if labels.dtype.kind not in "iu" or (labels < 0).any():
    raise UserError(f"{where}: video_labels must be non-negative ints, found {labels.tolist()[:5]}")
  sentences = tuple(fields["video_sentence"][vid])
  if not all(isinstance(s, str) for s in sentences):
    raise UserError(f"{where}: video_sentence must hold one string per utterance")
  features = {k: _matrix(where, name, fields[name][vid], n) for k, name in _FEATURES.items()}
  if embed_sentences is not None:
    features["text"] = _matrix(where, "embed_sentences output",
                               embed_sentences(list(sentences)), n)
  return Dialogue(id=str(vid), split=split,
                  speakers=np.array([SPEAKER_TO_IDX[s] for s in speakers], np.int32),
                  labels=labels.astype(np.int32), features=features, sentences=sentences,
                  utterance_ids=tuple(str(u) for u in fields["video_ids"][vid]))


def _matrix(where, name, value, n) -> np.ndarray:
  try:
    m = np.asarray(value, np.float32)
  except (TypeError, ValueError) as e:
    raise UserError(f"{where}: {name} is not a list of equal-length vectors ({e})") from e
  if m.ndim != 2 or m.shape[0] != n:
    raise UserError(f"{where}: {name} should be [{n} utterances, dim], found shape {m.shape}")
  if not np.isfinite(m).all():
    raise UserError(f"{where}: {name} holds NaN or inf")
  return m
