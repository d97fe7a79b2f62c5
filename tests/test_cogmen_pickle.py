"""COGMEN feature pickle: a small file in COGMEN's exact 9-tuple format loads; bad ones say why."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from jaxser.data.cogmen_pickle import load_cogmen_pickle
from jaxser.data.dialogues import concat_features, pad_dialogues
from jaxser.errors import UserError


def make_fields(n_train=11, n_test=2, seed=0):
  """The nine fields as IEMOCAP_features_4.pkl holds them (lists per utterance, dicts per id)."""
  rng = np.random.default_rng(seed)
  ids, spk, lab, text, audio, visual, sent = ({} for _ in range(7))
  train = [f"Ses0{1 + i % 4}F_impro0{i}" for i in range(n_train)]
  test = [f"Ses05M_script0{i}" for i in range(n_test)]
  for vid in train + test:
    t = int(rng.integers(2, 7))
    ids[vid] = [f"{vid}_{'FM'[k % 2]}{k:03d}" for k in range(t)]
    spk[vid] = ["F" if k % 3 else "M" for k in range(t)]
    lab[vid] = [int(v) for v in rng.integers(0, 4, t)]
    text[vid] = [rng.normal(size=100) for _ in range(t)]
    audio[vid] = [rng.normal(size=100) for _ in range(t)]
    visual[vid] = [rng.normal(size=512) for _ in range(t)]
    sent[vid] = [f"sentence {k} of {vid}" for k in range(t)]
  return [ids, spk, lab, text, audio, visual, sent, train, test]


def write(tmp_path, fields, protocol=pickle.HIGHEST_PROTOCOL):
  path = tmp_path / "IEMOCAP_features_4.pkl"
  with open(path, "wb") as f:
    pickle.dump(tuple(fields), f, protocol=protocol)
  return str(path)


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_loads_cogmen_format(tmp_path, protocol):
  fields = make_fields()
  data = load_cogmen_pickle(write(tmp_path, fields, protocol))
  train_vids, test_vids = fields[7], fields[8]
  # preprocess.get_iemocap: dev = trainVids[:int(0.1 * n)], train = the rest, test as listed.
  assert [d.id for d in data["dev"]] == train_vids[:1]
  assert [d.id for d in data["train"]] == train_vids[1:]
  assert [d.id for d in data["test"]] == test_vids
  d = data["train"][0]
  vid, t = d.id, len(fields[2][d.id])
  assert d.split == "train" and len(d) == t
  np.testing.assert_array_equal(d.speakers, [{"M": 0, "F": 1}[s] for s in fields[1][vid]])
  np.testing.assert_array_equal(d.labels, fields[2][vid])
  assert d.speakers.dtype == np.int32 and d.labels.dtype == np.int32
  assert {k: v.shape for k, v in d.features.items()} == {
      "text": (t, 100), "audio": (t, 100), "visual": (t, 512)}
  np.testing.assert_allclose(d.features["visual"], np.stack(fields[5][vid]), rtol=1e-6)
  assert d.sentences == tuple(fields[6][vid]) and d.utterance_ids == tuple(fields[0][vid])
  # COGMEN's Dataset.padding order: audio, text, visual.
  x = concat_features(d, "va")
  np.testing.assert_array_equal(x, np.concatenate([d.features["audio"], d.features["visual"]], 1))
  batch = pad_dialogues(data["test"], "atv")
  tmax = max(len(e) for e in data["test"])
  assert batch["x"].shape == (2, tmax, 712) and batch["lengths"].tolist() == [
      len(e) for e in data["test"]]
  assert (batch["labels"][batch["x"].sum(-1) == 0] == -1).all()


def test_sentence_embeddings_replace_text(tmp_path):
  data = load_cogmen_pickle(write(tmp_path, make_fields()),
                            embed_sentences=lambda s: np.ones((len(s), 768)))
  assert all(d.features["text"].shape == (len(d), 768) for d in data["test"])


def test_set_of_train_ids_is_sorted(tmp_path):
  fields = make_fields()
  fields[7] = set(fields[7])
  data = load_cogmen_pickle(write(tmp_path, fields))
  assert [d.id for d in data["dev"] + data["train"]] == sorted(fields[7])


def _corrupt(kind, fields):
  vid = fields[7][0]
  if kind == "tuple":
    return fields[:8]
  if kind == "missing":
    del fields[4][vid]
  elif kind == "length":
    fields[3][vid] = fields[3][vid][:-1]
  elif kind == "speaker":
    fields[1][vid] = ["X"] + fields[1][vid][1:]
  elif kind == "label":
    fields[2][vid] = [0.5] * len(fields[2][vid])
  elif kind == "ragged":
    fields[5][vid] = [np.zeros(512)] * (len(fields[5][vid]) - 1) + [np.zeros(3)]
  elif kind == "width":
    fields[4][vid] = [np.zeros(80)] * len(fields[4][vid])
  elif kind == "overlap":
    fields[8] = fields[8] + [vid]
  elif kind == "nan":
    fields[4][vid] = [np.full(100, np.nan)] * len(fields[4][vid])
  return fields


@pytest.mark.parametrize("kind,words", [
    ("tuple", "9-tuple"), ("missing", "missing from video_audio"), ("length", "video_text has"),
    ("speaker", "'M'/'F'"), ("label", "non-negative ints"), ("ragged", "video_visual"),
    ("width", "audio features differ in width"), ("overlap", "both trainVids and test_vids"),
    ("nan", "NaN")])
def test_bad_content_is_named(tmp_path, kind, words):
  path = write(tmp_path, _corrupt(kind, make_fields()))
  with pytest.raises(UserError) as e:
    load_cogmen_pickle(path)
  assert path in str(e.value) and words in str(e.value)


def test_missing_and_unreadable_files(tmp_path):
  with pytest.raises(FileNotFoundError, match="nope.pkl"):
    load_cogmen_pickle(str(tmp_path / "nope.pkl"))
  bad = tmp_path / "bad.pkl"
  bad.write_bytes(b"not a pickle")
  with pytest.raises(UserError, match="bad.pkl: not a readable pickle"):
    load_cogmen_pickle(str(bad))
