"""Fold protocols: no speaker leakage, validation from training data only, protocol shapes.

Corpora: the IEMOCAP fixture (5 sessions, 10 speakers), a hand-made list of utterances, and
the real EmoDB copy when it is present.
"""

from __future__ import annotations

import collections
import logging

import pytest

import fixtures
from jaxser.data import emodb, folds, iemocap
from jaxser.data.corpus import Utterance
from jaxser.errors import UserError


@pytest.fixture(scope="module")
def iemocap_utts(tmp_path_factory):
  logging.disable(logging.WARNING)
  try:
    manual_dir, _ = fixtures.make_iemocap(tmp_path_factory.mktemp("iemocap"))
    return iemocap.scan(manual_dir).utterances
  finally:
    logging.disable(logging.NOTSET)


@pytest.fixture(scope="module")
def emodb_utts():
  if not (fixtures.EMODB_REAL / "wav").is_dir():
    pytest.skip(f"the EmoDB copy is not at {fixtures.EMODB_REAL}")
  return emodb.scan(str(fixtures.EMODB_REAL)).utterances


def _synthetic_utts(num_speakers=6, per_speaker=20, num_classes=4):
  return [Utterance(id=f"s{s}_{i}", speaker=f"s{s}", label=(i * 7 + s) % num_classes,
                    session=f"sess{s // 2}")
          for s in range(num_speakers) for i in range(per_speaker)]


# predefined_split reads the corpus's own split from `session` (tested on its own below).
SPEAKER_INDEPENDENT = [p for p in folds.PROTOCOLS if p not in ("stratified_random",
                                                                "predefined_split")]


def _assert_no_leak(utts, fold_list):
  speaker = {u.id: u.speaker for u in utts}
  for f in fold_list:
    test_spk = {speaker[i] for i in f.test}
    assert test_spk, f.name
    assert not test_spk & {speaker[i] for i in f.train}, f.name
    assert not test_spk & {speaker[i] for i in f.valid}, f.name
    assert f.valid and f.train, f.name


@pytest.mark.parametrize("protocol", SPEAKER_INDEPENDENT)
def test_speaker_independent_protocols_do_not_leak(protocol, iemocap_utts):
  for utts in (iemocap_utts, _synthetic_utts()):
    fold_list = folds.make_folds(utts, protocol, seed=3)
    assert all(f.speaker_independent and f.protocol == protocol for f in fold_list)
    assert all(folds.protocol_label(f) == "speaker-independent" for f in fold_list)
    _assert_no_leak(utts, fold_list)
    # Every utterance is used exactly once per fold, and tests in exactly one fold.
    ids = sorted(u.id for u in utts)
    for f in fold_list:
      assert sorted(f.train + f.valid + f.test) == ids, f.name
    assert sorted(i for f in fold_list for i in f.test) == ids


@pytest.mark.parametrize("protocol", ["leave_one_speaker_out", "speaker_kfold"])
def test_no_leak_on_emodb(protocol, emodb_utts):
  fold_list = folds.make_folds(emodb_utts, protocol, seed=0)
  assert len(fold_list) == (10 if protocol == "leave_one_speaker_out" else 5)
  _assert_no_leak(emodb_utts, fold_list)


def test_session_protocols_need_sessions(emodb_utts):
  for protocol in ("session_kfold", "leave_one_session_out_speaker_valid"):
    with pytest.raises(ValueError, match="needs sessions.*leave_one_speaker_out"):
      folds.make_folds(emodb_utts, protocol, seed=0)


def test_session_kfold(iemocap_utts):
  by_id = {u.id: u for u in iemocap_utts}
  fold_list = folds.make_folds(iemocap_utts, "session_kfold", seed=0)
  assert len(fold_list) == 5
  for k, f in enumerate(fold_list):
    sessions = lambda ids: {by_id[i].session for i in ids}  # noqa: E731
    assert sessions(f.test) == {f"Ses0{k + 1}"}
    assert sessions(f.valid) == {f"Ses0{(k + 1) % 5 + 1}"}
    assert len(sessions(f.train)) == 3
    assert not sessions(f.train) & (sessions(f.test) | sessions(f.valid))
    assert len({by_id[i].speaker for i in f.test}) == 2


def test_leave_one_session_out_speaker_valid(iemocap_utts):
  by_id = {u.id: u for u in iemocap_utts}
  fold_list = folds.make_folds(iemocap_utts, "leave_one_session_out_speaker_valid", seed=0)
  assert len(fold_list) == 10
  tested = []
  for f in fold_list:
    (test_spk,) = {by_id[i].speaker for i in f.test}
    (valid_spk,) = {by_id[i].speaker for i in f.valid}
    tested.append(test_spk)
    # The other speaker of the same session validates; the other four sessions train.
    assert valid_spk[:5] == test_spk[:5] and valid_spk != test_spk
    train_sessions = {by_id[i].session for i in f.train}
    assert train_sessions == {f"Ses0{i}" for i in range(1, 6)} - {test_spk[:5]}
    assert len({by_id[i].speaker for i in f.train}) == 8
  assert sorted(tested) == sorted({u.speaker for u in iemocap_utts})


def test_session_protocols_reject_bad_sessions():
  utts = _synthetic_utts()
  lone = utts + [Utterance(id="x0", speaker="solo", label=0, session="sess9")]
  with pytest.raises(ValueError, match="session sess9 has one speaker"):
    folds.make_folds(lone, "leave_one_session_out_speaker_valid", seed=0)
  moved = utts + [Utterance(id="x1", speaker="s0", label=0, session="sess2")]
  with pytest.raises(ValueError, match="speaker s0 appears in sessions"):
    folds.make_folds(moved, "session_kfold", seed=0)


def test_stratified_random():
  utts = _synthetic_utts(num_speakers=8, per_speaker=50)
  (f,) = folds.make_folds(utts, "stratified_random", seed=1)
  assert f.protocol == "stratified_random" and not f.speaker_independent
  assert folds.protocol_label(f) == "speaker-dependent"
  label = {u.id: u.label for u in utts}
  n = len(utts)
  assert len(f.test) == pytest.approx(0.2 * n, abs=4)
  assert len(f.valid) == pytest.approx(0.1 * 0.8 * n, abs=4)
  assert sorted(f.train + f.valid + f.test) == sorted(label)
  total = collections.Counter(label.values())
  for part, frac in ((f.test, 0.2), (f.valid, 0.08)):
    counts = collections.Counter(label[i] for i in part)
    for c, m in total.items():
      assert abs(counts[c] - frac * m) <= 1, (c, counts[c], frac * m)
  # Deterministic in the seed, different across seeds and repeats.
  (again,) = folds.make_folds(utts, "stratified_random", seed=1)
  assert again == f
  (other,) = folds.make_folds(utts, "stratified_random", seed=2)
  assert set(other.test) != set(f.test)
  reps = folds.make_folds(utts, "stratified_random", seed=1, repeats=3)
  assert len(reps) == 3 and len({r.test for r in reps}) == 3
  # Random splits put the same speakers on both sides: that is what "speaker-dependent" says.
  speaker = {u.id: u.speaker for u in utts}
  assert {speaker[i] for i in f.test} & {speaker[i] for i in f.train}


def test_unknown_protocol():
  with pytest.raises(ValueError, match="protocol.name='loso'.*stratified_random"):
    folds.make_folds(_synthetic_utts(), "loso", seed=0)


def test_make_folds_catches_leaks(monkeypatch):
  utts = _synthetic_utts()

  def leaky(utts, rng):
    ids = [u.id for u in utts]
    return [folds.Fold("fold_0", tuple(ids[10:]), (), tuple(ids[:10]), "leaky", True)]

  monkeypatch.setitem(folds.PROTOCOLS, "leaky", leaky)
  with pytest.raises(RuntimeError, match="test speakers \\['s0'\\]"):
    folds.make_folds(utts, "leaky", seed=0)


@pytest.mark.parametrize("protocol", ["leave_one_speaker_out", "speaker_kfold"])
def test_two_validation_speakers(protocol):
  utts = _synthetic_utts(num_speakers=6)
  speaker = {u.id: u.speaker for u in utts}
  kwargs = {"num_folds": 3} if protocol == "speaker_kfold" else {}
  fold_list = folds.make_folds(utts, protocol, seed=0, valid_speakers=2, **kwargs)
  _assert_no_leak(utts, fold_list)
  for f in fold_list:
    valid = {speaker[i] for i in f.valid}
    assert len(valid) == 2 and not valid & {speaker[i] for i in f.test + f.train}, f.name
  if protocol == "leave_one_speaker_out":  # validation rotates: every speaker validates
    assert {speaker[i] for f in fold_list for i in f.valid} == {u.speaker for u in utts}


def test_too_many_validation_speakers_is_a_clear_error():
  utts = _synthetic_utts(num_speakers=6)
  with pytest.raises(UserError, match=r"config.protocol.valid_speakers=5: protocol "
                                      r"leave_one_speaker_out tests 1 of 6 speakers.*at most 4"):
    folds.make_folds(utts, "leave_one_speaker_out", seed=0, valid_speakers=5)
  with pytest.raises(UserError, match=r"valid_speakers=4.*speaker_kfold tests 2 of 6.*at most 3"):
    folds.make_folds(utts, "speaker_kfold", seed=0, num_folds=3, valid_speakers=4)
  with pytest.raises(UserError, match="valid_speakers=0.*1 or more"):
    folds.make_folds(utts, "leave_one_speaker_out", seed=0, valid_speakers=0)


def test_predefined_split_reads_the_split_from_sessions():
  utts = [Utterance(id=f"u{i}", speaker=f"d{i}_M", label=0, session=s)
          for i, s in enumerate(["train", "train", "dev", "test"])]
  (f,) = folds.make_folds(utts, "predefined_split", seed=0)
  assert (f.train, f.valid, f.test) == (("u0", "u1"), ("u2",), ("u3",))
  with pytest.raises(UserError, match="no utterances in"):
    folds.make_folds(utts[:2], "predefined_split", seed=0)


def test_config_protocol_makes_the_folds_and_keeps_max_folds_of_them():
  utts = _synthetic_utts(num_speakers=6)
  protocol = {"name": "speaker_kfold", "num_folds": 3, "valid_speakers": 1}
  every = folds.make_folds(utts, "speaker_kfold", seed=4, num_folds=3, valid_speakers=1)
  assert folds.from_config(protocol, utts, seed=4) == every
  assert folds.from_config({**protocol, "max_folds": 2}, utts, seed=4) == every[:2]
  assert protocol == {"name": "speaker_kfold", "num_folds": 3, "valid_speakers": 1}  # unchanged
