"""CREMA-D scanner.

Layout: `<manual_dir>/AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav`, e.g.
`AudioWAV/1001_DFA_ANG_XX.wav`: actors 1001-1091 (91 speakers), 12 sentence codes (the
transcripts below), intensity LO / MD / HI / XX (unspecified). Optional
`<manual_dir>/VideoDemographics.csv` (ActorID, Age, Sex, ...) fills `gender`.
6 classes, in this order:

  0 anger (ANG)  1 disgust (DIS)  2 fear (FEA)  3 happy (HAP)  4 neutral (NEU)  5 sad (SAD)

The release holds a few broken clips (e.g. 1076_MTI_SAD_XX.wav has no audio): files that
cannot be used (`features.audio.REASONS`) are counted and listed, and training stops on them
until they are fixed or `--skip_bad_files` leaves them out (see `registry.load_corpus`).
CREMA-D has no sessions or dialogues: `session`, `dialogue` are "" and `turn` is -1.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from typing import Optional, Sequence

from jaxser.data.corpus import Corpus, scan_wav_folder

log = logging.getLogger(__name__)

NAME = "cremad"
CLASS_NAMES = ("anger", "disgust", "fear", "happy", "neutral", "sad")
EMOTION_CODES = {"ANG": 0, "DIS": 1, "FEA": 2, "HAP": 3, "NEU": 4, "SAD": 5}
INTENSITIES = ("LO", "MD", "HI", "XX")
SENTENCES = {
    "IEO": "It's eleven o'clock.",
    "TIE": "That is exactly what happened.",
    "IOM": "I'm on my way to the meeting.",
    "IWW": "I wonder what this is about.",
    "TAI": "The airplane is almost full.",
    "MTI": "Maybe tomorrow it will be cold.",
    "IWL": "I would like a new alarm clock.",
    "ITH": "I think I have a doctor's appointment.",
    "DFA": "Don't forget a jacket.",
    "ITS": "I think I've seen this before.",
    "TSI": "The surface is slick.",
    "WSI": "We'll stop in a couple of minutes.",
}
LAYOUT = ("<manual_dir>/AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav, e.g. "
          "AudioWAV/1001_DFA_ANG_XX.wav (the AudioWAV folder of "
          "https://github.com/CheyneyComputerScience/CREMA-D, fetched with git lfs)")

_NAME_RE = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{1,2})$")


def wav_dir(manual_dir: str) -> str:
  """The release's AudioWAV folder under `manual_dir`; a clear error when it is not there."""
  path = os.path.join(os.path.expanduser(str(manual_dir)), "AudioWAV")
  if not os.path.isdir(path):
    raise FileNotFoundError(f"CREMA-D: {path} is not a directory. corpus.manual_dir must hold "
                            f"the release's AudioWAV folder: {LAYOUT}")
  return path


def _genders(manual_dir: str) -> dict[str, str]:
  path = os.path.join(os.path.expanduser(str(manual_dir)), "VideoDemographics.csv")
  if not os.path.isfile(path):
    return {}
  with open(path, newline="", encoding="utf-8-sig") as f:
    rows = list(csv.DictReader(f))
  if rows and not {"ActorID", "Sex"} <= set(rows[0]):
    raise ValueError(f"CREMA-D: {path} lacks the ActorID / Sex columns of the release's file")
  return {r["ActorID"].strip(): r["Sex"].strip()[:1].lower() for r in rows}


def scan(manual_dir: str, sample_rate: int = 16000,
         intensities: Optional[Sequence[str]] = None) -> Corpus:
  """CREMA-D utterances under `manual_dir` (optionally only the given intensity codes)."""
  root = wav_dir(manual_dir)
  if intensities is not None:
    unknown = set(intensities) - set(INTENSITIES)
    if unknown:
      raise ValueError(f"CREMA-D: intensities {sorted(unknown)} unknown; choose from {INTENSITIES}")
  genders = _genders(manual_dir)

  def parse(stem: str, path: str):
    m = _NAME_RE.match(stem)
    if not m:
      log.warning("CREMA-D: skipping %s: name is not <actor>_<sentence>_<emotion>_<level>",
                  path)
      return "bad file name"
    actor, sentence, emo, level = m.groups()
    if emo not in EMOTION_CODES:
      return f"label {emo}"
    if sentence not in SENTENCES:
      log.warning("CREMA-D: skipping %s: unknown sentence code %s", path, sentence)
      return f"sentence {sentence}"
    if level not in INTENSITIES:
      log.warning("CREMA-D: %s has intensity code %s, not one of %s", path, level, INTENSITIES)
    if intensities is not None and level not in intensities:
      return f"intensity {level}"
    return dict(speaker=actor, label=EMOTION_CODES[emo], transcript=SENTENCES[sentence],
                gender=genders.get(actor, ""))

  utts, skipped, bad = scan_wav_folder("CREMA-D", root, parse)
  if not utts:
    raise FileNotFoundError(f"CREMA-D: no usable wav files in {root} "
                            f"(skipped: {dict(skipped)}); expected {LAYOUT}")
  return Corpus(NAME, CLASS_NAMES, int(sample_rate), utts, skipped, bad)
