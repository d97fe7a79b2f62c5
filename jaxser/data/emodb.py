"""EmoDB (Berlin Database of Emotional Speech) scanner.

Layout: `<manual_dir>/wav/<name>.wav`, name `03a01Fa`: speaker (2 digits), text code
(a01..b10), emotion letter, version letter. 535 utterances, 10 speakers, 10 German
sentences (the transcripts below), 7 classes, in this order:

  0 anger (W)  1 boredom (L)  2 disgust (E)  3 fear (A)  4 happiness (F)  5 sadness (T)
  6 neutral (N)

EmoDB has no sessions or dialogues: `session`, `dialogue` are "" and `turn` is -1.
"""

from __future__ import annotations

import logging
import os
import re

from jaxser.data.corpus import Corpus, scan_wav_folder

log = logging.getLogger(__name__)

NAME = "emodb"
CLASS_NAMES = ("anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral")
EMOTION_CODES = {"W": 0, "L": 1, "E": 2, "A": 3, "F": 4, "T": 5, "N": 6}
SENTENCES = {
    "a01": "Der Lappen liegt auf dem Eisschrank.",
    "a02": "Das will sie am Mittwoch abgeben.",
    "a04": "Heute abend könnte ich es ihm sagen.",
    "a05": "Das schwarze Stück Papier befindet sich da oben neben dem Holzstück.",
    "a07": "In sieben Stunden wird es soweit sein.",
    "b01": "Was sind denn das für Tüten, die da unter dem Tisch stehen?",
    "b02": "Sie haben es gerade hochgetragen und jetzt gehen sie wieder runter.",
    "b03": "An den Wochenenden bin ich jetzt immer nach Hause gefahren und habe Agnes besucht.",
    "b09": "Ich will das eben wegbringen und dann mit Karl was trinken gehen.",
    "b10": "Die wird auf dem Platz sein, wo wir sie immer hinlegen.",
}
GENDER = {"03": "m", "08": "f", "09": "f", "10": "m", "11": "m", "12": "m", "13": "f",
          "14": "f", "15": "m", "16": "f"}
LAYOUT = ("<manual_dir>/wav/<speaker><text><emotion><version>.wav, e.g. wav/03a01Fa.wav "
          "(the 'wav' folder of the EmoDB release, http://emodb.bilderbar.info/)")

_NAME_RE = re.compile(r"^(\d\d)([ab]\d\d)([A-Za-z])([a-z])$")


def wav_dir(manual_dir: str) -> str:
  """The release's wav folder under `manual_dir`; a clear error when it is not there."""
  path = os.path.join(os.path.expanduser(str(manual_dir)), "wav")
  if not os.path.isdir(path):
    raise FileNotFoundError(f"EmoDB: {path} is not a directory. corpus.manual_dir must hold "
                            f"the release's wav folder: {LAYOUT}")
  return path


def scan(manual_dir: str, sample_rate: int = 16000) -> Corpus:
  """EmoDB utterances under `manual_dir`; audio is read lazily and resampled to `sample_rate`."""
  root = wav_dir(manual_dir)

  def parse(stem: str, path: str):
    m = _NAME_RE.match(stem)
    if not m:
      log.warning("EmoDB: skipping %s: name does not match <speaker><text><emotion><version>",
                  path)
      return "bad file name"
    spk, text, emo, _ = m.groups()
    if emo not in EMOTION_CODES:
      return f"label {emo}"
    return dict(speaker=spk, label=EMOTION_CODES[emo], transcript=SENTENCES.get(text, ""),
                gender=GENDER.get(spk, ""))

  utts, skipped, bad = scan_wav_folder("EmoDB", root, parse)
  if not utts:
    raise FileNotFoundError(f"EmoDB: no usable wav files in {root} (skipped: {dict(skipped)}); "
                            f"expected {LAYOUT}")
  return Corpus(NAME, CLASS_NAMES, int(sample_rate), utts, skipped, bad)
