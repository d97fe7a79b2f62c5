"""Input normalisation across examples ("train", "speaker"), class-balanced CE, stage hashes."""

from __future__ import annotations

import ml_collections
import numpy as np
import pytest

from jaxser import train
from jaxser.data import normalization
from jaxser.data.corpus import Corpus, Utterance
from jaxser.data.folds import Fold
from jaxser.data.inputs import InputArrays, build_inputs
from jaxser.errors import UserError
from jaxser.experiment import Experiment
from jaxser.methods import common, litecnn_kd
from tiny_config import tiny_quickstart

SR = 8000


def _corpus(seed=0, speakers=("a", "b", "c"), per_speaker=4, scale=None):
  """Noise clips of 0.2-0.5 s, each speaker with its own level and offset."""
  rng = np.random.default_rng(seed)
  utts, waves = [], {}
  for k, s in enumerate(speakers):
    for i in range(per_speaker):
      u = Utterance(f"{s}{i}", s, i % 2)
      n = int(rng.integers(int(0.2 * SR), int(0.5 * SR)))
      level = (scale or {}).get(s, 1.0 + k)
      waves[u.id] = (k + level * rng.standard_normal(n)).astype(np.float32)
      utts.append(u)
  return Corpus("hand", ("x", "y"), SR, utts, waveforms=waves)


def _frames(x, length):
  """Valid entries of [N, L, F] (or [N, S] as F = 1) as [M, F]."""
  x = x if x.ndim == 3 else x[..., None]
  return x[np.arange(x.shape[1]) < length[:, None]]


def _fbank(normalization_mode=None):
  cfg = dict(kind="logfbank", num_filters=8, win_len=0.025, hop=0.01, max_seconds=0.4,
             normalize=False)
  if normalization_mode:
    cfg["normalization"] = normalization_mode
  return ml_collections.ConfigDict(cfg)


def _experiment(corpus, input_cfg, **stage):
  c = ml_collections.ConfigDict()
  c.name, c.seed, c.method = "norm", 0, "litecnn_kd"
  c.stage_order = ("teacher",)
  c.stages = ml_collections.ConfigDict(
      {"teacher": dict(model=dict(name="mlp"), input=input_cfg, loss="ce", teachers=(),
                       **stage)})
  return Experiment(c, corpus, litecnn_kd, None, "/nonexistent")


FOLD = Fold("fold_0", ("a0", "a1", "a2", "a3", "b0", "b1"), ("b2", "b3"), ("c0", "c1", "c2", "c3"),
            "hand", True)


def test_train_normalisation_uses_the_training_examples_only():
  ex = _experiment(_corpus(), _fbank("train"))
  inputs = ex.fold_inputs("teacher", FOLD)
  raw = ex.inputs("teacher")
  assert inputs.x.shape == raw.x.shape and inputs.x.dtype == np.float32
  rows = inputs.rows(FOLD.train)
  train = _frames(inputs.x[rows], inputs.length[rows])
  np.testing.assert_allclose(train.mean(0), 0, atol=1e-5)
  np.testing.assert_allclose(train.std(0), 1, atol=1e-5)
  # The test speaker's audio changed beyond recognition: the training rows stay identical.
  louder = _experiment(_corpus(scale={"c": 50.0}), _fbank("train")).fold_inputs("teacher", FOLD)
  assert not np.allclose(louder.x[inputs.rows(FOLD.test)], inputs.x[inputs.rows(FOLD.test)])
  np.testing.assert_array_equal(louder.x[rows], inputs.x[rows])
  # Without the setting nothing changes (and "none" is the default).
  assert ex.inputs("teacher") is raw
  plain = _experiment(_corpus(), _fbank())
  assert plain.fold_inputs("teacher", FOLD) is plain.inputs("teacher")


@pytest.mark.parametrize("kind", ["waveform", "logfbank"])
def test_speaker_normalisation_gives_each_speaker_mean_0_std_1(kind):
  cfg = (_fbank("speaker") if kind == "logfbank" else ml_collections.ConfigDict(
      dict(kind="waveform", max_seconds=0.4, normalize=False, normalization="speaker")))
  corpus = _corpus()
  inputs = build_inputs(corpus, cfg)
  for s in corpus.speakers:
    rows = [i for i, u in enumerate(corpus.utterances) if u.speaker == s]
    frames = _frames(inputs.x[rows], inputs.length[rows])
    assert frames.shape[1] == (1 if kind == "waveform" else 8)  # waveform: one scalar pair
    np.testing.assert_allclose(frames.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(frames.std(0), 1, atol=1e-4)
  # Padding stays zero, so clips shorter than max_seconds keep their zero tail.
  short = np.flatnonzero(inputs.length < inputs.x.shape[1])
  assert len(short) and all(not inputs.x[i, inputs.length[i]:].any() for i in short)


def test_padded_frames_and_vectors():
  rng = np.random.default_rng(0)
  x = rng.normal(3.0, 2.0, (5, 6, 3)).astype(np.float32)
  length = np.array([6, 4, 2, 5, 3], np.int32)
  arrays = InputArrays(ids=np.array([f"u{i}" for i in range(5)]), x=x, length=length,
                       label=np.zeros(5, np.int32))
  garbage = np.where(np.arange(6)[None, :, None] < length[:, None, None], x, 1e6)
  with_garbage = InputArrays(ids=arrays.ids, x=garbage.astype(np.float32), length=length,
                             label=arrays.label)
  for a, b in zip(normalization.statistics(arrays, range(5)),
                  normalization.statistics(with_garbage, range(5))):
    np.testing.assert_array_equal(a, b)
  valid = _frames(x, length).astype(np.float64)
  np.testing.assert_allclose(normalization.statistics(arrays, range(5))[0], valid.mean(0))
  out = normalization.by_train(with_garbage, ["u0", "u1", "u2"])
  assert not out.x[np.arange(6)[None, :] >= length[:, None]].any()
  # [N, F] vectors: per dimension over examples ("length" is the vector size, not a time axis).
  vec = InputArrays(ids=arrays.ids, x=x[:, 0], length=np.full(5, 3, np.int32),
                    label=arrays.label, time_axis=False)
  z = normalization.by_train(vec, list(arrays.ids)).x
  np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
  np.testing.assert_allclose(z.std(0), 1, atol=1e-5)


def test_bad_settings_are_user_errors():
  corpus = _corpus()
  with pytest.raises(UserError, match=r"config.stages.teacher.input.normalization='global'"):
    _experiment(corpus, _fbank("global"))
  wave = ml_collections.ConfigDict(dict(kind="waveform", max_seconds=0.4, normalization="train"))
  with pytest.raises(UserError, match="normalization='train' cannot be combined with waveform "
                                      "noise"):
    _experiment(corpus, wave, noise=dict(types=("white",), snr_db=(5.0,)))
  tokens = InputArrays(ids=np.array(["u0"]), x=np.ones((1, 4), np.int32),
                       length=np.array([4], np.int32), label=np.zeros(1, np.int32))
  with pytest.raises(UserError, match="token ids"):
    normalization.by_train(tokens, ["u0"])


# ---------------------------------------------------------------- class-balanced CE


def test_balanced_class_weights_follow_the_fold_training_labels():
  assert common.balanced_class_weights([0, 0, 0, 1], 3) == pytest.approx((4 / 9, 4 / 3, 0.0))
  cfg = ml_collections.ConfigDict(dict(label_smoothing=0.0, class_weights="balanced"))
  resolved = common.resolve_class_weights(cfg, np.array([0, 0, 0, 1]), 2)
  assert resolved.class_weights == pytest.approx((4 / 6, 4 / 2))
  assert cfg.class_weights == "balanced"  # the stage config itself is left alone
  plain = ml_collections.ConfigDict(dict(label_smoothing=0.0))
  assert common.resolve_class_weights(plain, np.array([0]), 2) is plain
  # ce with the resolved weights: torch's weighted mean, Σ w[y]·nll / Σ w[y].
  logits = np.array([[2.0, 0.0], [0.5, 0.5], [0.0, 1.0], [1.0, -1.0]], np.float32)
  labels = np.array([0, 0, 0, 1])
  batch = {"label": labels, "mask": np.ones(4, np.float32)}
  loss, _ = common.ce({"logits": logits}, None, batch, resolved)
  nll = -np.log(np.exp(logits) / np.exp(logits).sum(1, keepdims=True))[np.arange(4), labels]
  w = np.array(resolved.class_weights)[labels]
  assert float(loss) == pytest.approx(float((w * nll).sum() / w.sum()), rel=1e-5)
  with pytest.raises(UserError, match="unresolved"):
    common.ce({"logits": logits}, None, batch, cfg)
  # The Experiment resolves it per fold from the fold's training examples.
  ex = _experiment(_corpus(), _fbank(), loss_cfg=dict(class_weights="balanced"))
  inputs = ex.fold_inputs("teacher", FOLD)
  got = ex._loss_cfg("teacher", inputs, inputs.example_ids(FOLD.train, train=True))
  labels = [u.label for u in _corpus().utterances if u.id in FOLD.train]
  assert got.class_weights == pytest.approx(common.balanced_class_weights(labels, 2))


def test_a_stage_runs_with_train_normalisation_and_balanced_weights(tmp_path):
  config = tiny_quickstart(epochs=1)
  config.stage_order = ("teacher",)
  config.stages.teacher.input.normalization = "train"
  config.stages.teacher.loss_cfg.class_weights = "balanced"
  config.report.latency_repeats = 0
  rep = train.run(config, str(tmp_path / "run"))
  assert 0 <= rep["summary"]["teacher"]["ua"]["mean"] <= 1
  assert "input normalisation: teacher train;" in rep["protocol_line"]
