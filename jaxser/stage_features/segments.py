"""Segmented inputs (`stages.<name>.input.segment`): evaluation groups per utterance, and the
examples a teacher cache holds."""

from __future__ import annotations

import numpy as np


def groups(inputs, utt_ids):
  """`trainer.evaluate` groups for segmented inputs of `utt_ids` (None when unsegmented);
  for dialogue inputs the utterance of every slot of their dialogues ("slots")."""
  if not inputs.segmented and inputs.members is None:
    return None
  utt_ids = list(utt_ids)
  position = {u: i for i, u in enumerate(utt_ids)}
  if inputs.members is not None:
    members = inputs.members[inputs.rows(inputs.example_ids(utt_ids, train=False))]
    return np.asarray([position.get(m, -1) for m in members.ravel()]), len(utt_ids), "slots"
  utts = inputs.example_utts(inputs.example_ids(utt_ids, train=False))
  return np.asarray([position[u] for u in utts]), len(utt_ids), inputs.aggregate


def cache_ids(inputs, fold, train_ids) -> list:
  """Every example of `fold` a later stage may ask a teacher for: the training examples
  `train_ids` (training segments), the validation utterances' training examples (a stage
  with `train.refit` trains on them) and every utterance's evaluation examples."""
  utts = list(fold.train) + list(fold.valid) + list(fold.test)
  return list(dict.fromkeys(train_ids.tolist()
                            + inputs.example_ids(fold.valid, train=True).tolist()
                            + inputs.example_ids(utts, train=False).tolist()))
