"""Fold protocols: which utterance ids train, validate and test in each fold.

Every protocol is named in configs and reports. Validation ids always come from
training speakers (or, for speaker-dependent splits, training utterances), never
from the test fold.

  leave_one_speaker_out   one speaker tests; the next speaker (sorted, cyclic) validates
  speaker_kfold           speakers dealt into k groups by the seed; same validation rule
  session_kfold           one session tests; the next session (cyclic) validates
                          (IEMOCAP: 5 folds)
  leave_one_session_out_speaker_valid
                          one speaker tests; the other speaker of its session validates;
                          the other sessions train (IEMOCAP: 10 folds)
  predefined_split        the corpus's own split: each utterance's `session` names it
                          ("train" / "dev" / "test"; COGMEN's pickle, the synthetic dialogues)
  stratified_random       speaker-DEPENDENT random 80/20 split, stratified by class;
                          valid = a stratified fraction of the training part
`protocol_label(fold)` gives the label a report must print next to a fold's figures.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from jaxser.data.corpus import Utterance
from jaxser.errors import UserError


@dataclasses.dataclass(frozen=True)
class Fold:
  name: str
  train: tuple[str, ...]
  valid: tuple[str, ...]
  test: tuple[str, ...]
  protocol: str
  speaker_independent: bool


def _stratified_take(utts: Sequence[Utterance], fraction: float, rng: np.random.Generator):
  """Splits `utts` into (rest, taken) with `fraction` of every class taken."""
  taken = []
  by_label: dict[int, list[Utterance]] = {}
  for u in utts:
    by_label.setdefault(u.label, []).append(u)
  for label in sorted(by_label):
    group = by_label[label]
    order = rng.permutation(len(group))
    n = int(round(fraction * len(group)))
    taken.extend(group[i] for i in order[:n])
  taken_ids = {u.id for u in taken}
  return [u for u in utts if u.id not in taken_ids], taken


def _ids(utts: Sequence[Utterance]) -> tuple[str, ...]:
  return tuple(u.id for u in utts)


def _speaker_folds(utts, test_groups, protocol, rng, valid_speakers=1):
  """Folds whose test set is each group of speakers; validation = other speakers."""
  speakers = sorted({u.speaker for u in utts})
  if valid_speakers < 1:
    raise UserError(f"config.protocol.valid_speakers={valid_speakers}: the best epoch is chosen "
                    "on validation speakers; set it to 1 or more")
  folds = []
  for k, test_spk in enumerate(test_groups):
    rest = [s for s in speakers if s not in test_spk]
    if len(rest) <= valid_speakers:
      fix = (f"set valid_speakers to at most {len(rest) - 1}" if len(rest) > 1 else
             "the corpus has too few speakers for this protocol")
      raise UserError(f"config.protocol.valid_speakers={valid_speakers}: protocol {protocol} "
                      f"tests {len(test_spk)} of {len(speakers)} speakers in fold_{k}, which "
                      f"leaves none to train on; {fix}")
    # Validation speakers rotate with the fold so every speaker validates once.
    start = (speakers.index(sorted(test_spk)[0]) + 1) % len(speakers)
    ring = speakers[start:] + speakers[:start]
    valid_spk = [s for s in ring if s not in test_spk][:valid_speakers]
    test = [u for u in utts if u.speaker in test_spk]
    valid = [u for u in utts if u.speaker in valid_spk]
    train = [u for u in utts if u.speaker not in test_spk and u.speaker not in valid_spk]
    folds.append(Fold(f"fold_{k}", _ids(train), _ids(valid), _ids(test), protocol, True))
  return folds


def leave_one_speaker_out(utts, rng, valid_speakers=1):
  speakers = sorted({u.speaker for u in utts})
  return _speaker_folds(utts, [[s] for s in speakers], "leave_one_speaker_out", rng,
                        valid_speakers)


def speaker_kfold(utts, rng, num_folds=5, valid_speakers=1):
  """Speaker-disjoint k-fold: speakers shuffled by the seed, dealt into k groups."""
  speakers = sorted({u.speaker for u in utts})
  if num_folds > len(speakers):
    raise ValueError(f"speaker_kfold: {num_folds} folds but only {len(speakers)} speakers")
  order = [speakers[i] for i in rng.permutation(len(speakers))]
  groups = [sorted(order[k::num_folds]) for k in range(num_folds)]
  return _speaker_folds(utts, groups, "speaker_kfold", rng, valid_speakers)


def _sessions(utts, protocol):
  """Session -> sorted speakers; an error if an utterance lacks a session or a speaker has two."""
  sessions: dict[str, set[str]] = {}
  for u in utts:
    if not u.session:
      raise ValueError(f"protocol {protocol} needs sessions, but utterance {u.id} has none; "
                       f"use leave_one_speaker_out or speaker_kfold for this corpus")
    sessions.setdefault(u.session, set()).add(u.speaker)
  owners: dict[str, str] = {}
  for sess, spks in sessions.items():
    for s in spks:
      if owners.setdefault(s, sess) != sess:
        raise ValueError(f"protocol {protocol}: speaker {s} appears in sessions {owners[s]} "
                         f"and {sess}")
  return {k: sorted(v) for k, v in sorted(sessions.items())}


def session_kfold(utts, rng):
  """One fold per session: test = that session, valid = the next one (cyclic), train = the rest.

  On IEMOCAP: 5 folds, each testing 2 speakers, validating on the 2 of the next session and
  training on the other 6.
  """
  sessions = _sessions(utts, "session_kfold")
  names = list(sessions)
  if len(names) < 3:
    raise ValueError(f"session_kfold: {len(names)} sessions leave none to train on; need >= 3")
  folds = []
  for k, sess in enumerate(names):
    valid_sess = names[(k + 1) % len(names)]
    test = [u for u in utts if u.session == sess]
    valid = [u for u in utts if u.session == valid_sess]
    train = [u for u in utts if u.session not in (sess, valid_sess)]
    folds.append(Fold(f"fold_{k}", _ids(train), _ids(valid), _ids(test), "session_kfold", True))
  return folds


def leave_one_session_out_speaker_valid(utts, rng):
  """One fold per speaker: test = the speaker, valid = the other speaker(s) of its session,
  train = every other session (IEMOCAP: 10 folds, 8 training speakers)."""
  sessions = _sessions(utts, "leave_one_session_out_speaker_valid")
  if len(sessions) < 2:
    raise ValueError("leave_one_session_out_speaker_valid needs >= 2 sessions")
  folds = []
  for sess, spks in sessions.items():
    if len(spks) < 2:
      raise ValueError(f"leave_one_session_out_speaker_valid: session {sess} has one speaker "
                       f"({spks[0]}), so nothing is left to validate on")
    for spk in spks:
      test = [u for u in utts if u.speaker == spk]
      valid = [u for u in utts if u.session == sess and u.speaker != spk]
      train = [u for u in utts if u.session != sess]
      folds.append(Fold(f"fold_{len(folds)}", _ids(train), _ids(valid), _ids(test),
                        "leave_one_session_out_speaker_valid", True))
  return folds


def stratified_random(utts, rng, test_fraction=0.2, valid_fraction=0.1, repeats=1):
  """Speaker-dependent random split: a stratified `test_fraction` of all utterances tests, a
  stratified `valid_fraction` of the training part validates; `repeats` independent draws."""
  if not 0 < test_fraction < 1 or not 0 <= valid_fraction < 1:
    raise ValueError(f"stratified_random: need 0 < test_fraction < 1 and 0 <= valid_fraction < 1,"
                     f" got {test_fraction} and {valid_fraction}")
  folds = []
  for k in range(repeats):
    rest, test = _stratified_take(utts, test_fraction, rng)
    train, valid = _stratified_take(rest, valid_fraction, rng)
    folds.append(Fold(f"fold_{k}", _ids(train), _ids(valid), _ids(test), "stratified_random",
                      False))
  return folds


def predefined_split(utts, rng, train="train", valid="dev", test="test"):
  """One fold: the corpus's own split, read from `Utterance.session` (corpora whose dialogues
  come split, e.g. COGMEN's pickle: trainVids / its first 10 % as dev / test_vids). Speakers
  there are per dialogue, so no speaker is on two sides."""
  del rng
  parts = {k: [u for u in utts if u.session == v] for k, v in
           (("train", train), ("valid", valid), ("test", test))}
  empty = [k for k, v in parts.items() if not v]
  if empty:
    raise UserError(f"predefined_split: no utterances in {empty} (sessions present: "
                    f"{sorted({u.session for u in utts})}); the corpus must name its split "
                    f"{train!r} / {valid!r} / {test!r} in each utterance's session")
  return [Fold("fold_0", *(_ids(parts[k]) for k in ("train", "valid", "test")),
               "predefined_split", True)]


PROTOCOLS = {
    "leave_one_speaker_out": leave_one_speaker_out,
    "speaker_kfold": speaker_kfold,
    "session_kfold": session_kfold,
    "leave_one_session_out_speaker_valid": leave_one_session_out_speaker_valid,
    "stratified_random": stratified_random,
    "predefined_split": predefined_split,
}


def protocol_label(fold: Fold) -> str:
  """'speaker-independent' or 'speaker-dependent': the label reports print with a fold's figures."""
  return "speaker-independent" if fold.speaker_independent else "speaker-dependent"


def make_folds(utts: Sequence[Utterance], protocol: str, seed: int, **kwargs) -> list[Fold]:
  """Folds of `protocol` (a key of PROTOCOLS) over `utts`, deterministic in `seed`."""
  if protocol not in PROTOCOLS:
    raise ValueError(f"config.protocol.name={protocol!r} is unknown; "
                     f"choose one of {sorted(PROTOCOLS)}")
  folds = PROTOCOLS[protocol](list(utts), np.random.default_rng(seed), **kwargs)
  speaker = {u.id: u.speaker for u in utts}
  for f in folds:
    if set(f.test) & (set(f.train) | set(f.valid)) or set(f.train) & set(f.valid):
      raise RuntimeError(f"protocol {protocol} {f.name}: train / valid / test share utterances")
    if f.speaker_independent:
      leak = {speaker[i] for i in f.test} & {speaker[i] for i in f.train + f.valid}
      if leak:
        raise RuntimeError(f"protocol {protocol} {f.name}: test speakers {sorted(leak)} also "
                           f"train or validate")
  return folds


def from_config(protocol: dict, utts: Sequence[Utterance], seed: int) -> list[Fold]:
  """The folds `config.protocol` makes over `utts` (with `max_folds`, its first that many)."""
  kwargs = dict(protocol)
  name, max_folds = kwargs.pop("name"), kwargs.pop("max_folds", 0)
  folds = make_folds(utts, name, seed, **kwargs)
  return folds[:max_folds] if max_folds else folds
