"""Utterance records and the in-memory corpus every builder produces."""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
from typing import Callable, Optional, Union

import numpy as np


@dataclasses.dataclass(frozen=True)
class Utterance:
  """One labelled utterance; `label` indexes `Corpus.class_names`."""

  id: str
  speaker: str
  label: int
  path: str = ""  # source audio file; "" when the audio is generated in memory
  session: str = ""
  dialogue: str = ""
  turn: int = -1  # order of the utterance inside its dialogue (graph models)
  transcript: str = ""
  duration: float = 0.0  # seconds
  gender: str = ""


@dataclasses.dataclass
class Corpus:
  """A corpus after label mapping: utterances, class list and what was skipped.

  `skipped` counts dropped utterances by reason ("label xxx", "empty file", ...),
  so that reports can say what was left out instead of losing it silently.
  `bad_files` names the files among them that cannot be used (path -> reason, one of
  `features.audio.REASONS`): `registry.load_corpus` stops on them unless told to skip them.
  `waveforms` holds audio by utterance id when it lives in memory (synthetic
  corpus, TFDS-prepared corpora); otherwise audio is read from `Utterance.path`.
  `vectors` holds per-utterance features of corpora that come without audio.
  """

  name: str
  class_names: tuple[str, ...]
  sample_rate: int
  utterances: list[Utterance]
  skipped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  bad_files: dict[str, str] = dataclasses.field(default_factory=dict)
  waveforms: Optional[dict[str, np.ndarray]] = None
  # Per-utterance feature vectors by modality ("audio", "text", "visual" -> {id: [D]}) of a
  # corpus that comes as features, not audio (COGMEN's pickle, the synthetic dialogues).
  vectors: Optional[dict[str, dict[str, np.ndarray]]] = None

  def __post_init__(self):
    ids = [u.id for u in self.utterances]
    if len(set(ids)) != len(ids):
      dup = [k for k, v in collections.Counter(ids).items() if v > 1][:5]
      raise ValueError(f"corpus {self.name!r}: duplicate utterance ids {dup}")
    for u in self.utterances:
      if not 0 <= u.label < len(self.class_names):
        raise ValueError(f"corpus {self.name!r}: utterance {u.id} has label {u.label} "
                         f"outside class list {self.class_names}")

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  @property
  def speakers(self) -> list[str]:
    return sorted({u.speaker for u in self.utterances})

  def by_id(self) -> dict[str, Utterance]:
    return {u.id: u for u in self.utterances}

  def class_counts(self) -> dict[str, int]:
    counts = collections.Counter(u.label for u in self.utterances)
    return {name: counts.get(i, 0) for i, name in enumerate(self.class_names)}

  def waveform(self, utt: Utterance) -> np.ndarray:
    """Mono float32 audio of `utt` at `self.sample_rate`."""
    if self.waveforms is not None:
      return self.waveforms[utt.id]
    from jaxser.features import audio  # local import: features depend on librosa
    return audio.load_wav(utt.path, self.sample_rate)


def scan_wav_folder(corpus: str, root: str,
                    parse: Callable[[str, str], Union[dict, str]]
                    ) -> tuple[list[Utterance], collections.Counter, dict[str, str]]:
  """Utterances of the .wav files in `root`, in name order, counts of what was skipped, and
  the files among them that cannot be used (path -> reason).

  `parse(stem, path)` gives the Utterance fields from the file name (speaker, label, ...)
  or, for a file to skip, the reason (str) it is counted under. Every file is read whole
  (`audio.check`: NaN/inf samples, silence and a cut data chunk show only there), so that a
  bad file is found now, not when features are computed after earlier stages trained; a
  bad file is counted by its reason and listed, for `registry.load_corpus` to stop on or skip.
  """
  from jaxser.features import audio  # local import: features depend on librosa
  skipped: collections.Counter = collections.Counter()
  bad: dict[str, str] = {}
  utts = []
  for fname in sorted(os.listdir(root)):
    if fname.startswith(".") or not fname.lower().endswith(".wav"):
      continue
    path = os.path.join(root, fname)
    fields = parse(fname[:-4], path)
    if isinstance(fields, str):
      skipped[fields] += 1
      continue
    try:
      info = audio.check(path)
    except audio.AudioError as e:
      skipped[e.reason] += 1
      bad[path] = e.reason
      logging.getLogger(__name__).info("%s: %s", corpus, e)
      continue
    utts.append(Utterance(id=fname[:-4], path=path, duration=info.duration, **fields))
  return utts, skipped, bad
