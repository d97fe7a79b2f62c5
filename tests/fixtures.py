"""Tiny corpora in exactly the official release layouts, and what a correct scan must find.

Each builder writes short int16 WAVs with soundfile plus the release's text files, and
returns an `Expected` record. Use them from tests as `import fixtures` (pytest puts the
tests folder on sys.path).
"""

from __future__ import annotations

import collections
import dataclasses
import os
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf

EMODB_REAL = Path(__file__).resolve().parents[1].parent / "shared/data/emodb"


@dataclasses.dataclass
class Expected:
  """What a scan of a fixture must give: id -> fields, and skipped counts."""

  utts: dict[str, dict]
  skipped: collections.Counter
  durations: dict[str, float]


def write_wav(path, n: int, sample_rate: int, seed: int, freq: float = 220.0):
  """`n` samples of a sine plus a little noise, 16-bit PCM."""
  rng = np.random.default_rng(seed)
  t = np.arange(n) / sample_rate
  x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(n)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  sf.write(path, x.astype(np.float32), sample_rate, subtype="PCM_16")


# ---------------------------------------------------------------- Whisper

# A tiny Whisper encoder's shape (HF WhisperConfig keys).
TINY_WHISPER = dict(d_model=64, encoder_layers=2, encoder_attention_heads=4,
                    encoder_ffn_dim=128, num_mel_bins=80, max_source_positions=1500)


def save_tiny_whisper(model_cls, directory, seed: int = 0, **encoder):
  """A tiny random HF Whisper model of class `model_cls` (e.g. transformers.WhisperModel),
  saved as an HF directory (what `model.checkpoint` names); returns the torch model."""
  import torch
  import transformers
  config = transformers.WhisperConfig(**{**TINY_WHISPER, **encoder}, decoder_layers=1,
                                      decoder_attention_heads=2, decoder_ffn_dim=32,
                                      vocab_size=100, max_target_positions=16,
                                      decoder_start_token_id=1, pad_token_id=0, eos_token_id=2,
                                      bos_token_id=1)
  torch.manual_seed(seed)
  model = model_cls(config).eval()
  model.save_pretrained(directory)
  return model


# ---------------------------------------------------------------- IEMOCAP

# (turn name suffix, start, end, label, transcript), in the order the file lists them.
# Not in time order on purpose: the scanner must sort by start time.
_IMPRO = [
    ("F000", 6.2901, 8.2357, "neu", "Excuse me."),
    ("F001", 10.0100, 11.3925, "exc", "Yeah."),
    ("F002", 13.5000, 14.5000, "ang", "Is there a problem?"),
    ("M000", 7.5712, 10.4750, "hap", "Do you have your forms?"),
    ("M001", 12.0000, 13.0000, "xxx", "Who told you to get in this line?"),
    ("M002", 15.0000, 16.0000, "fru", "You are."),
]
_SCRIPT = [
    ("F000", 1.0000, 2.0000, "sad", "I'm sorry."),
    ("M000", 2.5000, 3.5000, "oth", "What for?"),
    ("F001", 4.0000, 5.0000, "neu", "For everything."),
    ("M001", 5.5000, 6.5000, "ang", "Don't start."),
    ("M002", 7.0000, 8.0000, "sur", "Really?"),
    ("F002", 8.5000, 9.5000, "hap", "Yes, really."),  # its wav is missing
]
_EVALUATOR_LINES = (
    "C-E2:\tNeutral;\t()\n"
    "C-E3:\tNeutral;\t()\n"
    "C-F1:\tNeutral;\t(curious)\n"
    "A-E3:\tval 3; act 2; dom  2;\t()\n"
    "A-F1:\tval 3; act 2; dom  1;\t()\n"
)
IEMOCAP_4CLASS = {"neu": 0, "hap": 1, "exc": 1, "ang": 2, "sad": 3}
IEMOCAP_6CLASS = {"neu": 0, "hap": 1, "ang": 2, "sad": 3, "exc": 4, "fru": 5}


def _dialogue_files(sdir: Path, dialogue: str, turns, missing: set[str], n0: int, sr: int,
                    durations: dict):
  emo = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"]
  trans = []
  for k, (suffix, start, end, label, text) in enumerate(turns):
    uid = f"{dialogue}_{suffix}"
    emo.append(f"[{start:.4f} - {end:.4f}]\t{uid}\t{label}\t[2.5000, 3.0000, 2.0000]\n")
    emo.append(_EVALUATOR_LINES + "\n")
    trans.append(f"{uid} [{start:07.4f}-{end:07.4f}]: {text}\n")
    if uid not in missing:
      n = n0 + 160 * k
      write_wav(sdir / "sentences" / "wav" / dialogue / f"{uid}.wav", n, sr,
                seed=zlib.crc32(uid.encode()))
      durations[uid] = n / sr
  # Turns that are not utterances: no wav, no summary line; the scanner must pass over them.
  trans.insert(2, f"{dialogue}_MXX0 [017.0000-018.0000]: [LAUGHTER]\n")
  trans.append("M: [BREATHING]\n")
  (sdir / "dialog" / "EmoEvaluation").mkdir(parents=True, exist_ok=True)
  (sdir / "dialog" / "transcriptions").mkdir(parents=True, exist_ok=True)
  (sdir / "dialog" / "EmoEvaluation" / f"{dialogue}.txt").write_text("".join(emo))
  (sdir / "dialog" / "transcriptions" / f"{dialogue}.txt").write_text("".join(trans))


def make_iemocap(root, num_sessions: int = 5, sample_rate: int = 16000) -> tuple[str, dict]:
  """IEMOCAP_full_release/ under `root` with one improvised and one scripted dialogue per session.

  Returns (manual_dir, expected) with expected[(classes, subset)] -> Expected.
  """
  root = Path(root)
  rel = root / "IEMOCAP_full_release"
  expected = {}
  durations: dict[str, float] = {}
  for i in range(1, num_sessions + 1):
    sdir = rel / f"Session{i}"
    lead = "F" if i % 2 else "M"
    impro, script = f"Ses0{i}{lead}_impro01", f"Ses0{i}M_script01_1"
    _dialogue_files(sdir, impro, _IMPRO, set(), 1600, sample_rate, durations)
    _dialogue_files(sdir, script, _SCRIPT, {f"{script}_F002"}, 1200, sample_rate, durations)
    # Things the release also holds that are not utterance labels.
    cat = sdir / "dialog" / "EmoEvaluation" / "Categorical"
    cat.mkdir(parents=True, exist_ok=True)
    (cat / f"{impro}_e2_cat.txt").write_text(f"{impro}_F000 :Neutral state; ()\n")
    (sdir / "dialog" / "EmoEvaluation" / f"._{impro}.txt").write_bytes(b"\x00\x05\x16\x07junk")
  # A wav that no summary line names.
  write_wav(rel / "Session1" / "sentences" / "wav" / "Ses01F_impro01" / "Ses01F_impro01_F009.wav",
            800, sample_rate, seed=1)

  sessions = [(f"Ses0{i}{'F' if i % 2 else 'M'}_impro01", f"Ses0{i}M_script01_1")
              for i in range(1, num_sessions + 1)]
  for classes, cmap in (("4class", IEMOCAP_4CLASS), ("6class", IEMOCAP_6CLASS)):
    for subset in ("all", "improvised", "scripted"):
      utts, skipped = {}, collections.Counter({"no label line": 1})
      for impro, script in sessions:
        for dialogue, turns, kind in ((impro, _IMPRO, "improvised"),
                                      (script, _SCRIPT, "scripted")):
          kept = []
          for suffix, start, _, label, text in turns:
            uid = f"{dialogue}_{suffix}"
            if subset != "all" and kind != subset:
              skipped[f"subset: {kind}"] += 1
            elif label not in cmap:
              skipped[f"label {label}"] += 1
            elif uid not in durations:
              skipped["missing file"] += 1
            else:
              kept.append((start, uid, label, text))
          for turn, (_, uid, label, text) in enumerate(sorted(kept)):
            suffix = uid.rsplit("_", 1)[-1]
            utts[uid] = dict(speaker=uid[:5] + suffix[0], label=cmap[label], session=uid[:5],
                             dialogue=dialogue, turn=turn, transcript=text,
                             gender=suffix[0].lower())
      expected[(classes, subset)] = Expected(utts, skipped, durations)
  return str(root), expected


# ---------------------------------------------------------------- CREMA-D

CREMAD_FILES = {  # name -> (label index, transcript); every intensity code appears
    "1001_DFA_ANG_XX": (0, "Don't forget a jacket."),
    "1001_IEO_HAP_LO": (3, "It's eleven o'clock."),
    "1001_TIE_SAD_MD": (5, "That is exactly what happened."),
    "1001_IOM_NEU_HI": (4, "I'm on my way to the meeting."),
    "1002_DFA_DIS_XX": (1, "Don't forget a jacket."),
    "1002_IWW_FEA_HI": (2, "I wonder what this is about."),
    "1002_TAI_ANG_MD": (0, "The airplane is almost full."),
    "1003_ITH_NEU_LO": (4, "I think I have a doctor's appointment."),
    "1003_WSI_FEA_MD": (2, "We'll stop in a couple of minutes."),
    "1091_ITS_SAD_HI": (5, "I think I've seen this before."),
}


def make_cremad(root, sample_rate: int = 16000) -> tuple[str, Expected]:
  """AudioWAV/: good clips, a 0-byte clip, a header-only clip, a cut header and a bad name."""
  root = Path(root)
  wav = root / "AudioWAV"
  durations = {}
  for k, name in enumerate(CREMAD_FILES):
    n = 2000 + 100 * k
    write_wav(wav / f"{name}.wav", n, sample_rate, seed=k, freq=150 + 20 * k)
    durations[name] = n / sample_rate
  (wav / "1076_MTI_SAD_XX.wav").write_bytes(b"")  # 0 bytes
  sf.write(wav / "1076_MTI_NEU_XX.wav", np.zeros(0, np.float32), sample_rate, subtype="PCM_16")
  good = (wav / "1001_DFA_ANG_XX.wav").read_bytes()
  (wav / "1064_TIE_SAD_XX.wav").write_bytes(good[:20])  # header cut short
  write_wav(wav / "1003_TSI_SAD.wav", 500, sample_rate, seed=9)  # no intensity field
  (root / "VideoDemographics.csv").write_text(
      "ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n"
      "1002,21,Female,Caucasian,Not Hispanic\n1003,21,Female,Caucasian,Not Hispanic\n")
  genders = {"1001": "m", "1002": "f", "1003": "f"}
  utts = {name: dict(speaker=name[:4], label=lab, transcript=text,
                     gender=genders.get(name[:4], ""), session="", dialogue="", turn=-1)
          for name, (lab, text) in CREMAD_FILES.items()}
  skipped = collections.Counter({"empty file": 2, "unreadable file": 1, "bad file name": 1})
  return str(root), Expected(utts, skipped, durations)


# ---------------------------------------------------------------- EmoDB

EMODB_FILES = {  # name -> label index in emodb.CLASS_NAMES
    "03a01Fa": 4, "03a02Wb": 0, "08b01Lc": 1, "08a04Ea": 2, "09b02Aa": 3, "09a05Tc": 5,
    "16b10Nb": 6,
}


def make_emodb(root, sample_rate: int = 22050) -> tuple[str, Expected]:
  """wav/ with a few EmoDB-named clips at 22.05 kHz (as in the shared copy) and one bad name."""
  root = Path(root)
  durations = {}
  for k, name in enumerate(EMODB_FILES):
    n = 4410 + 441 * k
    write_wav(root / "wav" / f"{name}.wav", n, sample_rate, seed=k, freq=200 + 30 * k)
    durations[name] = n / sample_rate
  write_wav(root / "wav" / "notes.wav", 100, sample_rate, seed=0)
  utts = {name: dict(speaker=name[:2], label=lab, session="", dialogue="", turn=-1)
          for name, lab in EMODB_FILES.items()}
  return str(root), Expected(utts, collections.Counter({"bad file name": 1}), durations)
