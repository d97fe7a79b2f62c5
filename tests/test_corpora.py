"""Corpus scanners, the registry and the TFDS builders on fixtures in the official layouts.

Also the EmoDB scan of the real copy in ../shared/data/emodb (skipped when it is absent).
"""

from __future__ import annotations

import logging
import os
import time

import ml_collections
import numpy as np
import pytest

import fixtures
from jaxser.data import cremad, emodb, iemocap, registry
from jaxser.errors import UserError
from jaxser.features import audio

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(autouse=True)
def _quiet(caplog):
  caplog.set_level(logging.ERROR)


@pytest.fixture(scope="module")
def iemocap_fx(tmp_path_factory):
  return fixtures.make_iemocap(tmp_path_factory.mktemp("iemocap"))


@pytest.fixture(scope="module")
def cremad_fx(tmp_path_factory):
  return fixtures.make_cremad(tmp_path_factory.mktemp("cremad"))


@pytest.fixture(scope="module")
def emodb_fx(tmp_path_factory):
  return fixtures.make_emodb(tmp_path_factory.mktemp("emodb"))


def _fields(corpus, keys):
  return {u.id: {k: getattr(u, k) for k in keys} for u in corpus.utterances}


def _check(corpus, exp):
  keys = next(iter(exp.utts.values())).keys()
  assert _fields(corpus, keys) == exp.utts
  assert dict(corpus.skipped) == dict(exp.skipped)
  for u in corpus.utterances:
    assert u.duration == pytest.approx(exp.durations[u.id], abs=1e-9), u.id


# ---------------------------------------------------------------- IEMOCAP


@pytest.mark.parametrize("classes", ["4class", "6class"])
@pytest.mark.parametrize("subset", ["all", "improvised", "scripted"])
def test_iemocap_scan(iemocap_fx, classes, subset):
  manual_dir, expected = iemocap_fx
  corpus = iemocap.scan(manual_dir, classes=classes, subset=subset)
  _check(corpus, expected[(classes, subset)])
  assert corpus.class_names == iemocap.CLASS_LISTS[classes]
  for u in corpus.utterances:
    assert os.path.isfile(u.path) and u.path.endswith(f"{u.dialogue}/{u.id}.wav")


def test_iemocap_details(iemocap_fx):
  manual_dir, expected = iemocap_fx
  corpus = iemocap.scan(manual_dir)  # defaults: 4class, all
  assert len(corpus.utterances) == 35
  assert corpus.speakers == sorted(f"Ses0{i}{g}" for i in range(1, 6) for g in "FM")
  by_id = corpus.by_id()
  # excited merges into happy in 4-class; the speaker is the turn's, not the dialogue lead's.
  assert by_id["Ses01F_impro01_F001"].label == corpus.class_names.index("happy")
  assert by_id["Ses02M_impro01_F000"].speaker == "Ses02F"
  # Conversation order by start time, not file order: F000 6.29, M000 7.57, F001 10.01, F002 13.5.
  impro = sorted((u for u in corpus.utterances if u.dialogue == "Ses01F_impro01"),
                 key=lambda u: u.turn)
  assert [u.id[-4:] for u in impro] == ["F000", "M000", "F001", "F002"]
  assert [u.turn for u in impro] == [0, 1, 2, 3]
  assert by_id["Ses01F_impro01_M000"].transcript == "Do you have your forms?"
  # The scan lists utterances in (session, dialogue, turn) order.
  keys = [(u.session, u.dialogue, u.turn) for u in corpus.utterances]
  assert keys == sorted(keys)
  # manual_dir may be the release folder itself.
  inner = iemocap.scan(os.path.join(manual_dir, "IEMOCAP_full_release"))
  assert [u.id for u in inner.utterances] == [u.id for u in corpus.utterances]


def test_iemocap_errors(tmp_path, iemocap_fx):
  layout = r"IEMOCAP_full_release.*Session\{1\.\.5\}/sentences/wav"
  with pytest.raises(FileNotFoundError, match=layout):
    iemocap.scan(str(tmp_path / "nowhere"))
  with pytest.raises(ValueError, match="classes='5class'"):
    iemocap.scan(iemocap_fx[0], classes="5class")
  with pytest.raises(ValueError, match="subset='impro'"):
    iemocap.scan(iemocap_fx[0], subset="impro")


# ---------------------------------------------------------------- CREMA-D


def test_cremad_scan(cremad_fx):
  manual_dir, expected = cremad_fx
  corpus = cremad.scan(manual_dir)
  _check(corpus, expected)
  assert corpus.class_names == ("anger", "disgust", "fear", "happy", "neutral", "sad")
  assert len(cremad.SENTENCES) == 12
  assert corpus.speakers == ["1001", "1002", "1003", "1091"]


def test_cremad_intensities(cremad_fx):
  corpus = cremad.scan(cremad_fx[0], intensities=("HI",))
  assert sorted(u.id for u in corpus.utterances) == [
      "1001_IOM_NEU_HI", "1002_IWW_FEA_HI", "1091_ITS_SAD_HI"]
  # The level is read from the name before the file is opened, so the three broken XX clips
  # count as "intensity XX" here; the bad name still counts as such.
  assert dict(corpus.skipped) == {"intensity XX": 5, "intensity LO": 2, "intensity MD": 3,
                                  "bad file name": 1}
  with pytest.raises(ValueError, match="intensities"):
    cremad.scan(cremad_fx[0], intensities=("XL",))


def test_cremad_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"AudioWAV.*<actor>_<sentence>_<emotion>_<level>"):
    cremad.scan(str(tmp_path))


# ---------------------------------------------------------------- EmoDB


def test_emodb_fixture(emodb_fx):
  manual_dir, expected = emodb_fx
  corpus = emodb.scan(manual_dir, sample_rate=16000)
  _check(corpus, expected)
  u = corpus.by_id()["03a01Fa"]
  assert u.transcript == "Der Lappen liegt auf dem Eisschrank." and u.gender == "m"
  # The 22.05 kHz file is resampled on read to the corpus rate.
  wave = corpus.waveform(u)
  assert wave.dtype == np.float32 and len(wave) == round(u.duration * 16000)
  with pytest.raises(FileNotFoundError, match=r"wav/03a01Fa\.wav"):
    emodb.scan(os.path.join(manual_dir, "wav"))


def test_emodb_real():
  if not (fixtures.EMODB_REAL / "wav").is_dir():
    pytest.skip(f"the EmoDB copy is not at {fixtures.EMODB_REAL}")
  start = time.perf_counter()
  corpus = emodb.scan(str(fixtures.EMODB_REAL))
  elapsed = time.perf_counter() - start
  assert len(corpus.utterances) == 535
  assert len(corpus.speakers) == 10
  counts = {code: corpus.class_counts()[emodb.CLASS_NAMES[i]]
            for code, i in emodb.EMOTION_CODES.items()}
  assert counts == {"W": 127, "L": 81, "N": 79, "F": 71, "A": 69, "T": 62, "E": 46}
  assert not corpus.skipped
  assert {u.transcript for u in corpus.utterances} == set(emodb.SENTENCES.values())
  print(f"EmoDB scan: {elapsed:.3f} s for {len(corpus.utterances)} utterances")


# ---------------------------------------------------------------- audio files


def test_broken_files_name_the_file(cremad_fx):
  wav = os.path.join(cremad_fx[0], "AudioWAV")
  for name, reason in (("1076_MTI_SAD_XX", "empty file"), ("1076_MTI_NEU_XX", "empty file"),
                       ("1064_TIE_SAD_XX", "unreadable file"), ("9999_XXX_ANG_XX", "missing file")):
    path = os.path.join(wav, name + ".wav")
    for fn in (audio.probe, lambda p: audio.load_wav(p, 16000)):
      with pytest.raises(audio.AudioError, match=name) as info:
        fn(path)
      assert info.value.reason == reason
      assert isinstance(info.value, ValueError)


# ---------------------------------------------------------------- registry


def test_registry_scan_path(iemocap_fx, cremad_fx, tmp_path):
  cfg = ml_collections.ConfigDict(dict(name="iemocap", manual_dir=iemocap_fx[0],
                                       sample_rate=16000, classes="6class", subset="improvised"))
  corpus = registry.load_corpus(cfg)
  assert len(corpus.utterances) == len(iemocap_fx[1][("6class", "improvised")].utts)
  assert corpus.waveforms is None  # audio stays on disk until asked for
  corpus = registry.load_corpus(dict(name="cremad", manual_dir=cremad_fx[0],
                                     intensities=["HI", "LO"]))
  assert len(corpus.utterances) == 5
  with pytest.raises(ValueError, match=r"\['clases'\].*\['classes', 'subset'\]"):
    registry.load_corpus(dict(name="iemocap", manual_dir=iemocap_fx[0], clases="4class"))
  with pytest.raises(ValueError, match="manual_dir is not set.*AudioWAV"):
    registry.load_corpus(dict(name="cremad"))
  with pytest.raises(FileNotFoundError, match=str(tmp_path)):
    registry.load_corpus(dict(name="emodb", manual_dir=str(tmp_path)))
  with pytest.raises(ValueError, match="unknown; choose one of"):
    registry.load_corpus(dict(name="ravdess"))


def test_registry_synthetic_branch():
  corpus = registry.load_corpus(dict(name="synthetic", seed=0, num_speakers=2,
                                     utterances_per_speaker=2))
  assert corpus.name == "synthetic" and len(corpus.utterances) == 4


# ---------------------------------------------------------------- TFDS path


def test_tfds_path(iemocap_fx, cremad_fx, emodb_fx, tmp_path):
  """Prepared TFDS datasets give the scan's records, audio and skipped counts."""
  cases = [
      (dict(name="iemocap", manual_dir=iemocap_fx[0], classes="6class", subset="improvised"),
       "jaxser_iemocap/6class_improvised"),
      # 16-bit source files stored as int16 come back exactly; the config is named by its settings.
      (dict(name="cremad", manual_dir=cremad_fx[0], audio_dtype="int16"),
       "jaxser_cremad/all_16000hz_int16"),
      # Resampled 22.05 -> 8 kHz.
      (dict(name="emodb", manual_dir=emodb_fx[0], sample_rate=8000),
       "jaxser_emodb/all_8000hz_float32"),
  ]
  data_dir = str(tmp_path / "tfds")
  keys = ("speaker", "label", "session", "dialogue", "turn", "transcript", "gender")
  # The CREMA-D fixture's broken clips would stop the load (tested below).
  load = lambda cfg: registry.load_corpus(cfg, skip_bad_files=True)
  for cfg, folder in cases:
    scanned = load(cfg)
    prepared = load({**cfg, "use_tfds": True, "data_dir": data_dir})
    assert os.path.isdir(os.path.join(data_dir, folder, "1.0.0")), folder
    assert [u.id for u in prepared.utterances] == [u.id for u in scanned.utterances]
    assert _fields(prepared, keys) == _fields(scanned, keys)
    # tf.train.Example holds floats as float32.
    np.testing.assert_allclose([u.duration for u in prepared.utterances],
                               [u.duration for u in scanned.utterances], rtol=1e-7)
    assert prepared.class_names == scanned.class_names
    assert prepared.sample_rate == scanned.sample_rate
    assert dict(prepared.skipped) == dict(scanned.skipped) and prepared.skipped
    for u in scanned.utterances:
      np.testing.assert_array_equal(prepared.waveform(u), scanned.waveform(u))
    # A second load reuses the prepared files (the manual copy is no longer read) and still
    # reports what the scan left out.
    again = load({**cfg, "manual_dir": str(tmp_path / "gone"), "use_tfds": True,
                  "data_dir": data_dir})
    assert dict(again.skipped) == dict(scanned.skipped)
    assert len(again.utterances) == len(scanned.utterances)
    assert again.bad_files == scanned.bad_files
  # The prepared dataset keeps the names of the files it left out: a load still stops on them.
  with pytest.raises(UserError, match=r"'cremad': 3 audio file\(s\) .*AudioWAV/1064_TIE_SAD_XX"
                                      r"\.wav \(unreadable file\).*--skip_bad_files"):
    registry.load_corpus({**cases[1][0], "use_tfds": True, "data_dir": data_dir})


def test_tfds_path_wrong_manual_dir(tmp_path):
  (tmp_path / "empty").mkdir()
  (tmp_path / "empty" / "README").write_text("not CREMA-D")
  with pytest.raises((AssertionError, FileNotFoundError), match="AudioWAV"):
    registry.load_corpus(dict(name="cremad", manual_dir=str(tmp_path / "empty"), use_tfds=True,
                              data_dir=str(tmp_path / "tfds")))
