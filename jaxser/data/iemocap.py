"""IEMOCAP scanner.

Layout (the official release; `manual_dir` may be the release folder or its parent):

  IEMOCAP_full_release/Session{1..5}/sentences/wav/<dialogue>/<utterance>.wav
  IEMOCAP_full_release/Session{1..5}/dialog/EmoEvaluation/<dialogue>.txt
  IEMOCAP_full_release/Session{1..5}/dialog/transcriptions/<dialogue>.txt

Labels come from the EmoEvaluation summary lines
`[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]`; every
other line (header, `C-E1:` / `A-E1:` evaluator lines, blanks) is ignored. Transcripts come
from `Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.`; lines of turns without a wav
are ignored. Speaker = session + gender letter of the turn name's last part
(`Ses01F_impro01_M012` -> `Ses01M`; 10 speakers). `turn` numbers the kept utterances of a
dialogue 0, 1, ... by start time (ties by id): the conversation order graph models use.

Class lists (`classes=`):
  "4class": 0 neutral (neu)  1 happy (hap + exc)  2 angry (ang)  3 sad (sad)
            -- 5531 utterances on the full release
  "6class": 0 neutral  1 happy (hap)  2 angry  3 sad  4 excited (exc)  5 frustrated (fru)
Every other label (xxx, oth, sur, fea, dis, fru in 4-class) is skipped and counted as
"label <code>". `subset=` "improvised" / "scripted" / "all" picks dialogues by their
name (`_impro` / `_script`); the others are counted as "subset: scripted" etc. A labelled
utterance whose wav is missing or cannot be used (`features.audio.REASONS`) is counted and
listed in `Corpus.bad_files`: training stops on it unless `--skip_bad_files` leaves it out.
"""

from __future__ import annotations

import collections
import logging
import os
import re

from jaxser.data.corpus import Corpus, Utterance
from jaxser.features import audio

log = logging.getLogger(__name__)

NAME = "iemocap"
RELEASE = "IEMOCAP_full_release"
CLASS_LISTS = {
    "4class": ("neutral", "happy", "angry", "sad"),
    "6class": ("neutral", "happy", "angry", "sad", "excited", "frustrated"),
}
LABEL_MAPS = {
    "4class": {"neu": 0, "hap": 1, "exc": 1, "ang": 2, "sad": 3},
    "6class": {"neu": 0, "hap": 1, "ang": 2, "sad": 3, "exc": 4, "fru": 5},
}
SUBSETS = ("all", "improvised", "scripted")
LAYOUT = (f"<manual_dir>/{RELEASE}/Session{{1..5}}/sentences/wav/<dialogue>/<utterance>.wav, "
          f"<manual_dir>/{RELEASE}/Session{{1..5}}/dialog/EmoEvaluation/<dialogue>.txt and "
          f"<manual_dir>/{RELEASE}/Session{{1..5}}/dialog/transcriptions/<dialogue>.txt "
          f"(the release as extracted from IEMOCAP_full_release.tar.gz; manual_dir may also be "
          f"the {RELEASE} folder itself)")

_SUMMARY_RE = re.compile(r"^\[\s*([\d.]+)\s*-\s*([\d.]+)\s*\]\s+(Ses\S+)\s+(\S+)")
_TRANSCRIPT_RE = re.compile(r"^(Ses\S+)\s+\[\s*[\d.]+\s*-\s*[\d.]+\s*\]\s*:\s?(.*)$")
_SESSION_RE = re.compile(r"^Session(\d+)$")


def release_dir(manual_dir: str) -> str:
  """The release folder (holding Session1..5) under `manual_dir`; a clear error if absent."""
  base = os.path.expanduser(str(manual_dir))
  for cand in (os.path.join(base, RELEASE), base):
    if os.path.isdir(cand) and any(_SESSION_RE.match(d) for d in os.listdir(cand)):
      return cand
  raise FileNotFoundError(f"IEMOCAP: no Session1..5 folders in {os.path.join(base, RELEASE)} "
                          f"or {base}. corpus.manual_dir must hold the release: {LAYOUT}")


def _read_lines(path: str) -> list[str]:
  try:
    with open(path, "rb") as f:
      raw = f.read()
  except OSError as e:
    raise OSError(f"IEMOCAP: cannot read {path}: {e}") from e
  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError:
    text = raw.decode("latin-1")
  return text.splitlines()


def parse_emo_evaluation(path: str) -> list[tuple[float, float, str, str]]:
  """(start, end, utterance id, label code) of every summary line of an EmoEvaluation file."""
  out = []
  for line in _read_lines(path):
    m = _SUMMARY_RE.match(line.strip())
    if m:
      out.append((float(m.group(1)), float(m.group(2)), m.group(3), m.group(4).lower()))
  return out


def parse_transcriptions(path: str) -> dict[str, str]:
  """Utterance id -> transcript of a transcriptions file (other lines are ignored)."""
  out = {}
  for line in _read_lines(path):
    m = _TRANSCRIPT_RE.match(line.strip())
    if m:
      out[m.group(1)] = m.group(2).strip()
  return out


def speaker_of(utt_id: str) -> str:
  """`Ses01F_impro01_M012` -> `Ses01M`."""
  return utt_id[:5] + utt_id.rsplit("_", 1)[-1][:1]


def _subset_of(dialogue: str) -> str:
  if "_impro" in dialogue:
    return "improvised"
  return "scripted" if "_script" in dialogue else "unknown"


def _txt_files(directory: str) -> list[str]:
  if not os.path.isdir(directory):
    return []
  return sorted(f for f in os.listdir(directory)
                if f.endswith(".txt") and f.startswith("Ses")
                and os.path.isfile(os.path.join(directory, f)))


def scan(manual_dir: str, sample_rate: int = 16000, classes: str = "4class",
         subset: str = "all") -> Corpus:
  """IEMOCAP utterances under `manual_dir`, labelled by `classes`, from dialogues of `subset`."""
  if classes not in CLASS_LISTS:
    raise ValueError(f"IEMOCAP: classes={classes!r} unknown; choose one of {sorted(CLASS_LISTS)}")
  if subset not in SUBSETS:
    raise ValueError(f"IEMOCAP: subset={subset!r} unknown; choose one of {SUBSETS}")
  root = release_dir(manual_dir)
  label_map = LABEL_MAPS[classes]
  sessions = sorted((d for d in os.listdir(root) if _SESSION_RE.match(d)),
                    key=lambda d: int(d[7:]))
  missing = [f"Session{i}" for i in range(1, 6) if f"Session{i}" not in sessions]
  if missing:
    log.warning("IEMOCAP: %s lacks %s; scanning the sessions present", root, missing)
  skipped: collections.Counter = collections.Counter()
  bad: dict[str, str] = {}  # unusable files (path -> reason), for load_corpus to stop on
  utts, no_transcript = [], []
  for session in sessions:
    sdir = os.path.join(root, session)
    emo_dir = os.path.join(sdir, "dialog", "EmoEvaluation")
    wav_root = os.path.join(sdir, "sentences", "wav")
    if not os.path.isdir(emo_dir) or not os.path.isdir(wav_root):
      raise FileNotFoundError(f"IEMOCAP: {session} lacks {emo_dir} or {wav_root}; "
                              f"expected {LAYOUT}")
    labelled: set[str] = set()
    for fname in _txt_files(emo_dir):
      utts += _dialogue(sdir, fname, label_map, subset, labelled, skipped, bad, no_transcript)
    _count_unlabelled(wav_root, labelled, skipped)
  if no_transcript:
    log.warning("IEMOCAP: %d kept utterances have no transcript line (kept with transcript "
                "''), e.g. %s", len(no_transcript), no_transcript[:3])
  if not utts:
    raise FileNotFoundError(f"IEMOCAP: no usable utterances under {root} "
                            f"(skipped: {dict(skipped)}); expected {LAYOUT}")
  utts.sort(key=lambda u: (u.session, u.dialogue, u.turn, u.id))
  return Corpus(NAME, CLASS_LISTS[classes], int(sample_rate), utts, skipped, bad)


def _dialogue(sdir, fname, label_map, subset, labelled, skipped, bad, no_transcript):
  """The kept utterances of one dialogue (its EmoEvaluation file `fname` in session folder
  `sdir`), in turn order; adds to `labelled`, `skipped`, `bad` and `no_transcript`."""
  dialogue = fname[:-4]
  wav_dir = os.path.join(sdir, "sentences", "wav", dialogue)
  tpath = os.path.join(sdir, "dialog", "transcriptions", fname)
  transcripts = parse_transcriptions(tpath) if os.path.isfile(tpath) else {}
  kind = _subset_of(dialogue)
  kept = []
  for start, _, utt_id, code in parse_emo_evaluation(
      os.path.join(sdir, "dialog", "EmoEvaluation", fname)):
    labelled.add(utt_id)
    if subset != "all" and kind != subset:
      skipped[f"subset: {kind}"] += 1
      continue
    if code not in label_map:
      skipped[f"label {code}"] += 1
      continue
    path = os.path.join(wav_dir, utt_id + ".wav")
    try:
      info = audio.check(path)  # read whole, as `corpus.scan_wav_folder` does
    except audio.AudioError as e:
      skipped[e.reason] += 1
      bad[path] = e.reason
      log.info("IEMOCAP: %s", e)
      continue
    if utt_id not in transcripts:
      no_transcript.append(utt_id)
    kept.append((start, utt_id, path, info.duration, code))
  return [Utterance(id=utt_id, speaker=speaker_of(utt_id), label=label_map[code], path=path,
                    session=utt_id[:5], dialogue=dialogue, turn=turn,
                    transcript=transcripts.get(utt_id, ""), duration=duration,
                    gender=utt_id.rsplit("_", 1)[-1][:1].lower())
          for turn, (_, utt_id, path, duration, code) in enumerate(sorted(kept))]


def _count_unlabelled(wav_root, labelled, skipped) -> None:
  """Counts the wavs under `wav_root` that no summary line names (they would otherwise vanish
  without a trace) in `skipped["no label line"]`."""
  for dialogue in sorted(os.listdir(wav_root)):
    ddir = os.path.join(wav_root, dialogue)
    if not os.path.isdir(ddir) or dialogue.startswith("."):
      continue
    for w in os.listdir(ddir):
      if w.endswith(".wav") and not w.startswith(".") and w[:-4] not in labelled:
        skipped["no label line"] += 1
