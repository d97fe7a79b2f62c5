"""COGMEN KD and masked training (methods/cogmen.py): modality masks, the triplet KD loss on
hand-made embeddings, dialogue inputs, and tiny end-to-end runs (synthetic dialogues, an
IEMOCAP-layout fixture) through `jaxser.train.run`."""

from __future__ import annotations

import collections
import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxser import losses, train
from jaxser.data import registry
from jaxser.data.inputs import build_inputs
from jaxser.errors import UserError
from jaxser.methods import cogmen
from jaxser.stage_features.modality_mask import ModalityMask
from tiny_config import load_config

STREAMS = (("a", 3), ("v", 2))


def batch_x(b=4, t=6):
  return np.ones((b, t, 5), np.float32), np.full(b, t, np.int32)


def test_modality_mask_cases_follow_the_configured_probabilities():
  mask = ModalityMask(dict(p_none=0.1, p_first=0.3, p_second=0.3, p_random=0.3), 0, STREAMS)
  counts = collections.Counter(mask.draw([f"d{k}".encode()], 0)[0] for k in range(4000))
  for case, p in (("none", 0.1), ("first", 0.3), ("second", 0.3), ("random", 0.3)):
    assert abs(counts[case] / 4000 - p) < 0.03, counts


def test_modality_mask_is_deterministic_and_masks_whole_streams():
  x, n = batch_x()
  ids = [b"d0", b"d1", b"d2", b"d3"]
  first = ModalityMask(dict(p_none=0, p_first=1, p_second=0, p_random=0), 0, STREAMS)
  out = first(ids, x, n, 0)
  assert (out[..., :3] == 0).all() and (out[..., 3:] == 1).all()
  second = ModalityMask(dict(p_none=0, p_first=0, p_second=1, p_random=0), 0, STREAMS)
  out = second(ids, x, n, 0)
  assert (out[..., :3] == 1).all() and (out[..., 3:] == 0).all()
  rand = ModalityMask(dict(p_none=0, p_first=0, p_second=0, p_random=1), 3, STREAMS)
  np.testing.assert_array_equal(rand(ids, x, n, 5), rand(ids, x, n, 5))  # same batch, epoch
  assert not np.array_equal(rand(ids, x, n, 5), rand(ids, x, n, 6))


def test_random_masking_start_probability_and_length():
  x, n = np.ones((400, 20, 5), np.float32), np.full(400, 20, np.int32)
  n[0] = 7  # slots after a dialogue's last utterance stay as they are (zero padding)
  for length, expected in ((1, 0.2), (3, 1 - 0.8 ** 3)):
    m = ModalityMask(dict(p_none=0, p_first=0, p_second=0, p_random=1, start_prob=0.2,
                          length=length), 0, STREAMS)
    out = m([b"batch"], x, n, 0)
    audio = out[1:, :, 0] == 0  # utterance slots whose audio is masked
    # a mask started within the last `length` utterances covers this one (edge: fewer)
    assert abs(audio[:, length:].mean() - expected) < 0.03
    assert (out[0, 7:] == 1).all()
    # audio and video masks are drawn apart
    assert not np.array_equal(out[1:, :, 0] == 0, out[1:, :, 3] == 0)


def test_modality_mask_refuses_bad_settings():
  with pytest.raises(UserError, match="sum to 1"):
    ModalityMask(dict(p_none=0.5), 0, STREAMS)
  with pytest.raises(UserError, match="two streams"):
    ModalityMask({}, 0, (("a", 3),))


def test_draw_negatives_are_of_other_classes_present_in_the_batch():
  labels = jnp.array([0, 0, 1, 2, 2, 0])
  valid = jnp.array([1, 1, 1, 1, 1, 0], jnp.float32)  # the last slot is padding
  emb = jnp.arange(6.0)[:, None] * jnp.ones((1, 2))
  neg, mask = cogmen.draw_negatives(jax.random.PRNGKey(0), emb, labels, valid, 4)
  assert neg.shape == (6, 4, 2) and mask.shape == (6, 4)
  np.testing.assert_array_equal(mask[0], [False, True, True, False])  # class 3 absent
  np.testing.assert_array_equal(mask[2], [True, False, True, False])
  picked = np.asarray(neg[..., 0]).astype(int)
  for i in range(6):
    for c in range(4):
      if mask[i, c]:
        assert int(labels[picked[i, c]]) == c and valid[picked[i, c]] == 1


def test_triplet_kd_on_hand_made_embeddings():
  """A student that equals its teacher scores relu(0 − Σ d(a, n) + margin) per utterance; the
  loss is CE + that sum, with the reference's negatives drawn from the batch."""
  labels = np.array([[0, 1, 1, -1], [2, 0, -1, -1]], np.int32)
  emb = np.random.default_rng(0).normal(size=(2, 4, 3)).astype(np.float32)
  logits = np.zeros((2, 4, 3), np.float32)
  batch = {"label": jnp.asarray(labels), "mask": jnp.ones(2)}
  cfg = ml_collections.ConfigDict(dict(teacher="t", margin=1.0, p=2.0))
  trips = []
  for student in (emb, emb + 5.0):
    loss, parts = cogmen.triplet_kd({"logits": jnp.asarray(logits), "embedding": student},
                                    {"t": {"embedding": jnp.asarray(emb)}}, batch, cfg)
    np.testing.assert_allclose(parts["ce"], np.log(3), rtol=1e-5)
    # the same value by hand: the draw depends only on the teacher embeddings
    flat_l, valid = labels.reshape(-1), (labels.reshape(-1) >= 0)
    t = jnp.asarray(emb.reshape(8, 3))
    key = jax.random.PRNGKey(jnp.sum(jax.lax.bitcast_convert_type(t, jnp.int32) & 0xFFFF))
    neg, nm = cogmen.draw_negatives(key, t, jnp.maximum(jnp.asarray(flat_l), 0),
                                    jnp.asarray(valid, jnp.float32), 3)
    s = np.asarray(student).reshape(8, 3)
    d = lambda a, b: np.linalg.norm(a - b + 1e-6, axis=-1)
    n_neg = np.asarray(nm).sum(1)
    per = np.maximum(n_neg * d(s, emb.reshape(8, 3))
                     - (np.asarray(nm) * d(s[:, None], np.asarray(neg))).sum(1) + 1.0, 0)
    np.testing.assert_allclose(parts["triplet"], per[valid].sum(), rtol=1e-4)
    np.testing.assert_allclose(loss, parts["ce"] + parts["triplet"], rtol=1e-5)
    trips.append(float(parts["triplet"]))
  assert trips[1] > trips[0]  # a student far from its teacher pays more


def tiny_synthetic(epochs=1):
  c = load_config("cogmen_synthetic")
  c.corpus.n_dialogues = 20
  c.train.update(dict(epochs=epochs, batch_size=2, eval_batch_size=2))
  for s in c.stages.values():
    s.model.update(dict(hidden=8, context_ff=16))
  return c


def test_dialogue_inputs_pick_whole_dialogues_and_zero_streams():
  c = tiny_synthetic()
  corpus = registry.load_corpus(c.corpus)
  av = build_inputs(corpus, c.stages.cogmen_av.input)
  a_only = build_inputs(corpus, ml_collections.ConfigDict(dict(c.stages.cogmen_av.input,
                                                               zero="v")))
  assert av.streams == (("a", 32), ("v", 32)) and av.x.shape[2] == 64
  np.testing.assert_array_equal(a_only.x[..., :32], av.x[..., :32])
  assert (a_only.x[..., 32:] == 0).all() and np.abs(av.x[..., 32:]).sum() > 0
  d0 = [u.id for u in corpus.utterances if u.dialogue == av.ids[0]]
  assert av.example_ids(d0, train=False).tolist() == [av.ids[0]]
  assert (av.label[0, :len(d0)] >= 0).all() and (av.label[0, len(d0):] == -1).all()
  with pytest.raises(UserError, match="keeps dialogues whole"):
    av.example_ids(d0[:-1], train=True)


def test_synthetic_config_end_to_end(tmp_path):
  c = tiny_synthetic(epochs=1)
  rep = train.run(c, str(tmp_path / "run"))
  assert set(rep["summary"]) == set(c.stage_order)
  assert "weighted_f1" in rep["summary"]["student_kd"]
  assert set(rep["test_inputs"]) == {"cogmen_av", "cogmen_mask"}
  assert "a_only" in rep["test_inputs"]["cogmen_av"]
  md = open(tmp_path / "run" / "report.md").read()
  assert "cogmen_av [a_only]" in md and "weighted-F1" in md
  with open(tmp_path / "run" / "fold_0" / "student_kd" / "result.json") as f:
    history = json.load(f)["history"]
  assert "train/triplet" in history[0] and history[0]["train/triplet"] > 0
  n_test = len([u for u in registry.load_corpus(c.corpus).utterances if u.session == "test"])
  assert rep["summary"]["cogmen_a"]["confusion"] and \
      np.sum(rep["summary"]["cogmen_a"]["confusion"]) == n_test


def test_iemocap_config_end_to_end_on_the_release_layout(tmp_path, minilm_dir):
  from fixtures import make_iemocap
  manual_dir, _ = make_iemocap(tmp_path / "iemocap")
  c = load_config("cogmen_iemocap")
  c.corpus.manual_dir = manual_dir
  c.protocol.max_folds = 1
  c.train.update(dict(epochs=1, batch_size=2, eval_batch_size=2))
  for s in c.stages.values():
    s.model.update(dict(hidden=8, context_ff=16))
    s.input.audio.cache_dir = str(tmp_path / "egemaps")
    s.input.text.checkpoint = minilm_dir
  # (the fixture leaves one wav out on purpose)
  rep = train.run(c, str(tmp_path / "run"), skip_bad_files=True)
  corpus = registry.load_corpus(c.corpus, skip_bad_files=True)
  test_session = sorted({u.session for u in corpus.utterances})[0]
  n_test = sum(u.session == test_session for u in corpus.utterances)
  for stage in c.stage_order:
    assert np.sum(rep["summary"][stage]["confusion"]) == n_test
  assert "a_only" in rep["test_inputs"]["cogmen_at"]
