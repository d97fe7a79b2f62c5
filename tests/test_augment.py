"""Training noise on the fly: drawn per utterance per epoch, exact SNR, reproducible batches."""

import json
import ml_collections
import numpy as np
import pytest

from jaxser import train
from jaxser.data import synthetic
from jaxser.data.augment import NoiseAugment
from jaxser.data.inputs import build_inputs
from jaxser.data.pipeline import Pipeline
from jaxser.errors import UserError
from jaxser.features import noise as noise_lib
from tiny_config import tiny_quickstart


@pytest.fixture(scope="module")
def small():
  corpus = synthetic.build(dict(seed=0, num_speakers=8, utterances_per_speaker=3,
                                min_seconds=0.5, max_seconds=1.0))
  inputs = build_inputs(corpus, ml_collections.ConfigDict(
      dict(kind="waveform", max_seconds=1.0, normalize=True)))
  speaker = {u.id: u.speaker for u in corpus.utterances}
  return corpus, inputs, speaker


def _augment(small, normalize, types=("white", "pink", "brown", "babble"), snrs=(0, 5, 10, 20)):
  corpus, inputs, speaker = small
  cfg = ml_collections.ConfigDict(dict(types=types, snr_db=snrs, babble_k=2))
  return NoiseAugment(cfg, inputs, list(inputs.ids[:16]), speaker, corpus.sample_rate, seed=3,
                      normalize=normalize)


def test_noise_is_drawn_per_utterance_and_epoch_at_the_drawn_snr(small):
  _, inputs, _ = small
  aug = _augment(small, normalize=False)
  ids, x, n = inputs.ids[:8], inputs.x[:8], inputs.length[:8]
  noisy = aug(ids, x, n, epoch=0)
  np.testing.assert_array_equal(noisy, aug(ids, x, n, epoch=0))  # reproducible
  assert not np.allclose(noisy, aug(ids, x, n, epoch=1))  # a new draw each epoch
  drawn = set()
  for b, i in enumerate(ids):
    kind, snr, _ = aug.draw(i, 0)
    drawn.add(kind)
    assert snr in (0, 5, 10, 20)
    assert abs(noise_lib.measured_snr(x[b, :n[b]], noisy[b, :n[b]]) - snr) < 1e-3
    np.testing.assert_array_equal(noisy[b, n[b]:], 0)  # padding stays silent
  assert len(drawn) > 1


def test_normalised_inputs_stay_normalised(small):
  _, inputs, _ = small
  noisy = _augment(small, normalize=True)(inputs.ids[:4], inputs.x[:4], inputs.length[:4], 0)
  for b in range(4):
    valid = noisy[b, :inputs.length[b]]
    assert abs(valid.mean()) < 1e-4 and abs(valid.std() - 1) < 1e-3


def test_no_types_listed_draws_every_noise_on_offer(small):
  aug = _augment(small, normalize=False, types=())
  assert sorted(aug.types) == ["babble", "brown", "pink", "white"]
  _, inputs, _ = small
  kinds = {aug.draw(i, e)[0] for i in inputs.ids for e in range(3)}
  assert kinds == {"white", "pink", "brown", "babble"}


def test_unknown_noise_type_is_named(small):
  with pytest.raises(ValueError, match=r"\['factory'\] are unknown"):
    _augment(small, normalize=True, types=("white", "factory"))


def test_pipeline_adds_noise_to_training_batches_only(small):
  _, inputs, _ = small
  aug = _augment(small, normalize=True)
  pipe = Pipeline(inputs)
  ids = list(inputs.ids[:16])
  batches = lambda **kw: list(pipe.dataset(ids, 8, **kw).as_numpy_iterator())
  clean = batches(train=True, seed=1, epoch=0)
  noisy = batches(train=True, seed=1, epoch=0, augment=aug)
  again = batches(train=True, seed=1, epoch=0, augment=aug)
  for c, a, b in zip(clean, noisy, again):
    np.testing.assert_array_equal(c["label"], a["label"])  # same order
    assert not np.allclose(c["x"], a["x"])
    np.testing.assert_array_equal(a["x"], b["x"])
  evaluation = batches(train=False, augment=aug)
  rows = {k: i for i, k in enumerate(inputs.ids.tolist())}
  np.testing.assert_array_equal(evaluation[0]["x"], inputs.x[[rows[i] for i in ids[:8]]])


def test_a_stage_trains_on_noisy_waveforms(tmp_path):
  config = tiny_quickstart(epochs=1)
  config.stage_order = ("teacher", "student_kd")
  config.stages.student_kd.noise = dict(types=("white", "babble"), snr_db=(0.0, 10.0),
                                        babble_k=2)
  train.run(config, str(tmp_path / "noisy"))
  clean = tiny_quickstart(epochs=1)
  clean.stage_order = ("teacher", "student_kd")
  train.run(clean, str(tmp_path / "clean"))
  loss = lambda run: json.load(open(tmp_path / run / "fold_0" / "student_kd" / "result.json"))[
      "history"][0]["train/loss"]
  assert np.isfinite(loss("noisy")) and loss("noisy") != loss("clean")
  config.stages.teacher.noise = dict(types=("white",), snr_db=(0.0,))
  with pytest.raises(UserError, match="noise adds noise to waveforms"):
    train.run(config, str(tmp_path / "bad"))
