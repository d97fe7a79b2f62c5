"""Segment-level examples: cutting inputs into segments, and scoring utterances from them."""

import json
import os

import ml_collections
import numpy as np
import pytest

from jaxser import report, train
from jaxser.data import synthetic, teacher_cache
from jaxser.data.folds import from_config
from jaxser.data.inputs import build_inputs
from jaxser.features import egemaps, segments
from tiny_config import load_config


def _tiny_corpus():
  return synthetic.build(dict(seed=0, num_speakers=8, utterances_per_speaker=4, min_seconds=1.0,
                              max_seconds=1.5))


def _fbank_cfg(**segment):
  return ml_collections.ConfigDict(dict(kind="logfbank", num_filters=40, win_len=0.04, hop=0.01,
                                        max_seconds=2.0, normalize=True, segment=segment))


def test_segments_cut_the_utterance_frames_and_split_train_from_eval():
  corpus = _tiny_corpus()
  whole = build_inputs(corpus, _fbank_cfg())  # segment={} is falsy: one example per utterance
  assert not whole.segmented
  seg = build_inputs(corpus, _fbank_cfg(seconds=0.5, hop=0.25, eval_hop=0.4))
  assert seg.segmented and seg.x.shape[1:] == (50, 40)
  u = corpus.utterances[0]
  frames = whole.x[0, :whole.length[0]]
  train_ids = seg.example_ids([u.id], train=True)
  eval_ids = seg.example_ids([u.id], train=False)
  assert len(train_ids) == segments.num_segments(len(frames), 50, 25)
  assert len(eval_ids) == segments.num_segments(len(frames), 50, 40)
  assert not set(train_ids) & set(eval_ids)
  rows = {k: i for i, k in enumerate(seg.ids.tolist())}
  for k, i in enumerate(train_ids):
    np.testing.assert_array_equal(seg.x[rows[i]], frames[25 * k:25 * k + 50])
    assert seg.length[rows[i]] == 50 and seg.label[rows[i]] == u.label
  for k, i in enumerate(eval_ids):
    np.testing.assert_array_equal(seg.x[rows[i]], frames[40 * k:40 * k + 50])
  assert set(seg.example_utts(eval_ids)) == {u.id}
  # Equal hops: one set of segments serves training and evaluation.
  same = build_inputs(corpus, _fbank_cfg(seconds=0.5, hop=0.25))
  assert list(same.example_ids([u.id], True)) == list(same.example_ids([u.id], False))


def test_an_utterance_shorter_than_a_segment_is_one_padded_segment():
  corpus = _tiny_corpus()
  seg = build_inputs(corpus, _fbank_cfg(seconds=2.0, hop=1.0, eval_hop=0.4))
  assert seg.x.shape[1] == 200
  whole = build_inputs(corpus, _fbank_cfg())
  rows = {k: i for i, k in enumerate(seg.ids.tolist())}
  for split in (True, False):
    ids = seg.example_ids(whole.ids, train=split)
    assert len(ids) == len(whole.ids)  # 1-1.5 s utterances: one segment each
    np.testing.assert_array_equal(seg.length[[rows[i] for i in ids]], whole.length)


def test_a_pooled_kind_with_segments_is_computed_on_each_window(tmp_path):
  corpus = synthetic.build(dict(seed=1, num_speakers=2, utterances_per_speaker=2,
                                min_seconds=1.2, max_seconds=1.6))
  cfg = ml_collections.ConfigDict(dict(kind="egemaps_functionals", cache_dir=str(tmp_path),
                                       segment=dict(seconds=0.5, hop=0.25, eval_hop=0.5)))
  seg = build_inputs(corpus, cfg)
  waves = build_inputs(corpus, ml_collections.ConfigDict(dict(
      kind="waveform", max_seconds=2.0, normalize=False,
      segment=dict(seconds=0.5, hop=0.25, eval_hop=0.5))))
  # The same examples as the waveform windows a student would see, so teacher outputs join.
  np.testing.assert_array_equal(seg.ids, waves.ids)
  assert seg.x.shape == (len(seg.ids), egemaps.NUM_FUNCTIONALS) and not seg.time_axis
  rows = [0, len(seg.ids) // 2, len(seg.ids) - 1]
  want = egemaps.functionals([waves.x[r, :waves.length[r]] for r in rows], corpus.sample_rate,
                             progress=False)
  np.testing.assert_allclose(seg.x[rows], want, rtol=1e-5, atol=1e-5)
  assert not np.allclose(seg.x[0], seg.x[1])  # windows of one utterance differ


def test_per_epoch_one_draws_one_segment_per_utterance_reproducibly():
  corpus = _tiny_corpus()
  seg = build_inputs(corpus, _fbank_cfg(seconds=0.5, hop=0.1, eval_hop=0.5, per_epoch="one"))
  utts = [u.id for u in corpus.utterances[:10]]
  train_ids = seg.example_ids(utts, train=True)
  drawn = [seg.epoch_ids(train_ids, seed=3, epoch=e) for e in range(6)]
  for ids in drawn:
    assert sorted(seg.example_utts(ids).tolist()) == sorted(utts)  # one each
    assert set(ids) <= set(train_ids.tolist())
  np.testing.assert_array_equal(seg.epoch_ids(train_ids, seed=3, epoch=2), drawn[2])
  assert len({tuple(d) for d in drawn}) == len(drawn)  # other segments in other epochs
  everything = build_inputs(corpus, _fbank_cfg(seconds=0.5, hop=0.1, eval_hop=0.5))
  np.testing.assert_array_equal(everything.epoch_ids(train_ids, 3, 0), train_ids)
  with pytest.raises(ValueError, match="per_epoch"):
    build_inputs(corpus, _fbank_cfg(seconds=0.5, hop=0.1, per_epoch="some"))


def test_utterance_logits_are_log_mean_probabilities():
  logits = np.asarray([[2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
  index = np.asarray([0, 0, 1])
  p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  want = np.log(np.stack([p[:2].mean(0), p[2]]))
  np.testing.assert_allclose(segments.utterance_logits(logits, index, 2), want, rtol=1e-6)
  np.testing.assert_allclose(segments.utterance_logits(logits, index, 2, "mean_logit"),
                             [[1.0, 0.5], [0.0, 3.0]])


def tiny_dkdfmh(stage_order=("cnn_mha", "dkd")):
  c = load_config("dkdfmh_emodb")
  c.corpus = dict(name="synthetic", seed=0, num_speakers=8, utterances_per_speaker=6,
                  min_seconds=1.0, max_seconds=1.8)
  c.protocol = dict(name="speaker_kfold", num_folds=4, valid_speakers=1, max_folds=1)
  c.train.update(dict(epochs=1, batch_size=8, eval_batch_size=8))
  c.stage_order = stage_order
  c.report.compare = ()
  for s in c.stages.values():
    s.input.segment.update(dict(seconds=0.5, hop=0.25, eval_hop=0.4))
    s.model.update(dict(heads=2, attention_hidden=8, branch_features=2, features=(4, 4, 4, 8)))
  return c


def _first_fold(config):
  """Fold 0 of `tiny_dkdfmh`'s corpus and protocol, as the run made it."""
  corpus = synthetic.build({k: v for k, v in config.corpus.items() if k != "name"})
  return from_config(config.protocol, corpus.utterances, config.seed)[0]


def test_dkdfmh_run_trains_on_segments_and_scores_utterances(tmp_path):
  config = tiny_dkdfmh()
  workdir = str(tmp_path / "run")
  train.run(config, workdir)
  fold = _first_fold(config)
  for stage in config.stage_order:
    with open(os.path.join(workdir, fold.name, stage, "result.json")) as f:
      result = json.load(f)
    assert result["predictions"]["ids"] == list(fold.test)  # utterances, not segments
    assert len(result["predictions"]["pred"]) == len(fold.test)
    assert sum(map(sum, result["test"]["confusion"])) == len(fold.test)
  cache = teacher_cache.read(os.path.join(workdir, fold.name, "cache", "cnn_mha"))
  ids = set(cache.ids.tolist())
  assert any(i.startswith(f"{fold.train[0]}/seg") for i in ids)
  assert any(i.startswith(f"{fold.test[0]}/eval") for i in ids)
  assert not any(i.startswith(f"{fold.test[0]}/seg") for i in ids)  # no test training segments


def test_a_distilled_stage_on_segments_refits_on_the_validation_speakers_too(tmp_path):
  """`train.refit` of a KD stage trains on the validation utterances' training segments, so
  the teacher's cache holds them."""
  config = tiny_dkdfmh()
  config.train.refit = True
  workdir = str(tmp_path / "run")
  train.run(config, workdir)
  fold = _first_fold(config)
  ids = set(teacher_cache.read(os.path.join(workdir, fold.name, "cache", "cnn_mha")).ids.tolist())
  assert any(i.startswith(f"{fold.valid[0]}/seg") for i in ids)
  with open(os.path.join(workdir, fold.name, "dkd", "result.json")) as f:
    refit = json.load(f)["refit"]
  assert refit["examples"] > len(fold.train) + len(fold.valid)  # segments, several each


def test_dkd_losses_are_ce_plus_the_configured_terms():
  import jax.numpy as jnp
  from jaxser import losses
  from jaxser.methods import dkd
  rng = np.random.default_rng(0)
  s, t = rng.normal(size=(6, 4)), rng.normal(size=(6, 4)) * 3
  batch = {"label": jnp.asarray([0, 1, 2, 3, 0, 1]), "mask": jnp.ones(6)}
  cfg = ml_collections.ConfigDict(dict(teacher="T", alpha=1.0, beta=8.0, temperature=4.0))
  out, tout = {"logits": jnp.asarray(s)}, {"T": {"logits": jnp.asarray(t)}}
  ce = float(losses.cross_entropy(out["logits"], batch["label"]))
  tc = float(losses.tckd(out["logits"], tout["T"]["logits"], batch["label"], temperature=4.0))
  nc = float(losses.nckd(out["logits"], tout["T"]["logits"], batch["label"], temperature=4.0))
  assert tc > 0 and nc > 0
  np.testing.assert_allclose(float(dkd.tckd(out, tout, batch, cfg)[0]), ce + tc, rtol=1e-5)
  np.testing.assert_allclose(float(dkd.nckd(out, tout, batch, cfg)[0]), ce + 8 * nc, rtol=1e-5)
  np.testing.assert_allclose(float(dkd.dkd(out, tout, batch, cfg)[0]), ce + tc + 8 * nc,
                             rtol=1e-5)
  kd = float(losses.hinton_kd(out["logits"], tout["T"]["logits"], 4.0, t2_scale=True))
  np.testing.assert_allclose(float(dkd.kd(out, tout, batch, cfg)[0]), ce + kd, rtol=1e-5)


@pytest.mark.parametrize("arg", ["random", "loso", "random,beta_sweep"])
def test_iemocap_configs_build(arg):
  c = load_config(f"dkdfmh_iemocap:{arg}")
  assert c.corpus.subset == "improvised" and c.method == "dkd"
  rows = ("cnn_mha", "cnn", "kd", "tckd", "nckd", "dkd")
  if "beta_sweep" in arg:
    # β = 8 is the dkd row.
    sweep = ("dkd_beta1", "dkd_beta2", "dkd_beta4", "dkd", "dkd_beta16")
    assert c.stage_order == ("cnn_mha",) + sweep and c.report.file == "report_beta_sweep"
    assert [c.stages[s].loss_cfg.beta for s in sweep] == [1, 2, 4, 8, 16]
    # The report judges the paper's peak: β = 8 against each other β, all of which run.
    assert report.compare_pairs(c) == [("dkd", s) for s in sweep if s != "dkd"]
  else:
    assert c.stage_order == rows and c.report.file == "report"
  # Every variant holds every stage, so variants can share a run directory.
  assert set(c.stages) == set(rows) | {"dkd_beta1", "dkd_beta2", "dkd_beta4", "dkd_beta16"}
