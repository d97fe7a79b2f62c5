"""Frozen lower Whisper layers run once per clip: the `whisper_states` input kind and a
Whisper model on it (frontend "whisper_states") are the waveform model with those layers
frozen, without running them every step."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxser.data.corpus import Corpus, Utterance
from jaxser.data.inputs import build_inputs
from jaxser.errors import UserError
from jaxser.features import encoder_layers
from jaxser.models import pretrained
from jaxser.models.emodistill import EmoDistillWhisperStudent
from jaxser.models.whisper_classifier import WhisperClassifier
from jaxser.stage_checks import check_frozen_states

transformers = pytest.importorskip("transformers")
from fixtures import save_tiny_whisper  # noqa: E402

PREFIX = ("conv1", "conv2", "embed_positions")


def _waves(lengths, seed=0):
  rng = np.random.default_rng(seed)
  return [(0.3 * np.sin(np.arange(n) / 7.0) + 0.1 * rng.standard_normal(n)).astype(np.float32)
          for n in lengths]


def _batch(waves, num_samples):
  x = np.zeros((len(waves), num_samples), np.float32)
  for i, w in enumerate(waves):
    x[i, :len(w)] = w[:num_samples]
  return jnp.asarray(x), jnp.asarray([min(len(w), num_samples) for w in waves])


def _tail(params, first):
  """A waveform model's params as the model on states entering layer `first` holds them."""
  enc = params["encoder"]
  return {**params, "encoder": {
      **{k: v for k, v in enc.items() if k not in PREFIX},
      "layers": {k: v for k, v in enc["layers"].items() if int(k) >= first}}}


@pytest.mark.parametrize("cls", [WhisperClassifier, EmoDistillWhisperStudent])
def test_model_on_states_is_the_waveform_model_with_frozen_layers(cls):
  kw = dict(preset="tiny-whisper", freeze_layers=1, dropout=0.0)
  if cls is WhisperClassifier:
    kw["layer"] = 2  # the last state, counted from the encoder's input either way
  on_waves = cls(3, frontend="whisper_logmel", **kw)
  on_states = cls(3, frontend="whisper_states", **kw)
  x, n = _batch(_waves([8000, 5600]), 8000)  # the second clip padded
  variables = on_waves.init(jax.random.key(0), x, n)
  want = on_waves.apply(variables, x, n)
  full = WhisperClassifier(3, frontend="whisper_logmel", output_hidden_states=True,
                           **{**kw, "layer": 2})
  full_params = dict(full.init(jax.random.key(1), x, n)["params"],
                     encoder=variables["params"]["encoder"])
  out = full.apply({"params": full_params}, x, n)
  states, frames = out["hidden_states"], out["frame_mask"].sum(axis=1)
  assert list(frames) == [25, 18]
  got = on_states.apply({"params": _tail(variables["params"], 1)}, states[:, 1], frames)
  for key in want:
    np.testing.assert_allclose(got[key], want[key], atol=2e-5, err_msg=key)
  mine = on_states.init(jax.random.key(0), states[:, 1], frames)["params"]["encoder"]
  assert sorted(mine) == ["layer_norm", "layers"] and sorted(mine["layers"]) == ["1"]


def test_states_model_refuses_what_it_cannot_be():
  states, frames = jnp.zeros((1, 5, 32)), jnp.array([5])
  with pytest.raises(ValueError, match="freeze_layers >= 1"):
    WhisperClassifier(3, preset="tiny-whisper", frontend="whisper_states").init(
        jax.random.key(0), states, frames)
  with pytest.raises(ValueError, match="model.layer=-1 mixes every hidden state"):
    WhisperClassifier(3, preset="tiny-whisper", frontend="whisper_states", freeze_layers=1,
                      layer=-1).init(jax.random.key(0), states, frames)
  with pytest.raises(ValueError, match="model.layer=0 lies in the frozen layers"):
    WhisperClassifier(3, preset="tiny-whisper", frontend="whisper_states", freeze_layers=1,
                      layer=0).init(jax.random.key(0), states, frames)


def test_input_kind_caches_the_states_the_waveform_model_computes(tmp_path):
  checkpoint = str(tmp_path / "whisper")
  save_tiny_whisper(transformers.WhisperModel, checkpoint, encoder_layers=3)
  waves = _waves([16000, 11000, 20000], seed=1)
  corpus = Corpus("c", ("a", "b"), 16000,
                  [Utterance(f"u{i}", "s", i % 2) for i in range(3)],
                  waveforms={f"u{i}": w for i, w in enumerate(waves)})
  cfg = ml_collections.ConfigDict(dict(kind="whisper_states", checkpoint=checkpoint, layer=2,
                                       max_seconds=1.0, normalize=True,
                                       cache_dir=str(tmp_path / "cache"), batch_size=2))
  arrays = build_inputs(corpus, cfg)
  assert arrays.x.shape == (3, 50, 64) and list(arrays.length) == [50, 34, 50]
  wave_in = build_inputs(corpus, ml_collections.ConfigDict(dict(kind="waveform",
                                                                max_seconds=1.0)))
  kw = dict(checkpoint=checkpoint, freeze_layers=2, layer=3, dropout=0.0)
  on_waves = WhisperClassifier(2, frontend="whisper_logmel", output_hidden_states=True, **kw)
  x, n = jnp.asarray(wave_in.x), jnp.asarray(wave_in.length)
  variables = on_waves.load_pretrained(on_waves.init(jax.random.key(0), x, n))
  want = on_waves.apply(variables, x, n)
  for i, frames in enumerate(arrays.length):
    np.testing.assert_allclose(arrays.x[i, :frames], want["hidden_states"][i, 2, :frames],
                               atol=2e-5)
    assert not arrays.x[i, frames:].any()
  # The model on them: the checkpoint's layers from 2 up, and the same outputs.
  on_states = WhisperClassifier(2, frontend="whisper_states", **kw)
  s_vars = on_states.load_pretrained(
      on_states.init(jax.random.key(0), jnp.asarray(arrays.x), jnp.asarray(arrays.length)))
  _, encoder, _ = pretrained.load_whisper(checkpoint)
  assert sorted(s_vars["params"]["encoder"]["layers"]) == ["2"]
  np.testing.assert_array_equal(s_vars["params"]["encoder"]["layers"]["2"]["fc1"]["kernel"],
                                encoder["layers"]["2"]["fc1"]["kernel"])
  s_vars["params"]["classifier"] = variables["params"]["classifier"]
  got = on_states.apply(s_vars, jnp.asarray(arrays.x), jnp.asarray(arrays.length))
  np.testing.assert_allclose(got["logits"], want["logits"], atol=2e-5)
  # A second build reads every clip from the cache; another layer is another key.
  encoder_layers._prefix.cache_clear()
  real = encoder_layers._prefix
  encoder_layers._prefix = lambda c, k, a=False: (lambda *_: pytest.fail("encoder ran"),
                                                  real(c, k, a)[1])
  try:
    np.testing.assert_array_equal(build_inputs(corpus, cfg).x, arrays.x)
    with pytest.raises(BaseException, match="encoder ran"):
      build_inputs(corpus, ml_collections.ConfigDict({**cfg.to_dict(), "layer": 1}))
  finally:
    encoder_layers._prefix = real
  # With `segment` (predict's windows of a longer file): each window run as a clip alone.
  windows = build_inputs(corpus, ml_collections.ConfigDict(
      {**cfg.to_dict(), "segment": dict(seconds=0.5, hop=0.5)}))
  row = windows.rows(["u2/seg1"])[0]
  alone = encoder_layers.layer_states([wave_in.x[2, 8000:16000]], 8000, checkpoint, 2)[0]
  assert windows.x.shape[1:] == (25, 64) and windows.length[row] == 25
  np.testing.assert_allclose(windows.x[row], alone, atol=1e-6)
  with pytest.raises(ValueError, match="input.layer=4"):
    build_inputs(corpus, ml_collections.ConfigDict({**cfg.to_dict(), "layer": 4}))


@pytest.mark.parametrize("model, inp, match", [
    (dict(frontend="whisper_logmel", freeze_layers=2), dict(kind="whisper_states", layer=2),
     "need both set"),
    (dict(frontend="whisper_states", freeze_layers=2), dict(kind="waveform"), "need both set"),
    (dict(frontend="whisper_states", freeze_layers=3, checkpoint="w"),
     dict(kind="whisper_states", layer=2, checkpoint="w"), "must equal model.freeze_layers=3"),
    (dict(frontend="whisper_states", freeze_layers=2, checkpoint="w"),
     dict(kind="whisper_states", layer=2, checkpoint="v"), "model.checkpoint='w'"),
])
def test_stage_check_pairs_the_input_with_the_model(model, inp, match):
  stage = ml_collections.ConfigDict(dict(model=dict(name="whisper_classifier", **model),
                                         input=inp))
  with pytest.raises(UserError, match=match):
    check_frozen_states(stage, "config.stages.s")
  ok = dict(model=dict(frontend="whisper_states", freeze_layers=2, checkpoint="w"),
            input=dict(kind="whisper_states", layer=2, checkpoint="w"))
  check_frozen_states(ml_collections.ConfigDict(ok), "config.stages.s")


def test_a_stage_trains_on_cached_states(tmp_path):
  """Through the generic trainer: a fine-tuned tiny Whisper whose lowest layer is cached."""
  import tiny_config
  from jaxser import train
  checkpoint = str(tmp_path / "whisper")
  save_tiny_whisper(transformers.WhisperModel, checkpoint)
  config = tiny_config.tiny_mlps(epochs=2)
  config.stage_order = ("teacher", "student_kd")
  config.stages.student_kd.model = dict(name="whisper_classifier", checkpoint=checkpoint,
                                        frontend="whisper_states", freeze_layers=1, layer=-1,
                                        dropout=0.0)
  # layer=-1 mixes every state: the input holds states 0..1, the model runs layer 1 up.
  config.stages.student_kd.input = dict(kind="whisper_states", checkpoint=checkpoint, layer=1,
                                        all_states=True, max_seconds=1.0,
                                        cache_dir=str(tmp_path / "cache"))
  rep = train.run(config, str(tmp_path / "run"))
  assert 0.0 <= rep["summary"]["student_kd"]["ua"]["mean"] <= 1.0
  assert len([f for _, _, fs in os.walk(tmp_path / "cache") for f in fs]) == 64
  # Export: the stage's Whisper model on the waveform, its frozen layers in the graph, is
  # the stage's model on cached states.
  from jaxser import export, inference
  run = str(tmp_path / "run")
  res = export.export(run, 0, "student_kd", formats=("savedmodel",), log=lambda *_: None)
  assert res["max_abs_diff"]["savedmodel"] < 1e-5
  config = inference.read_config(run)
  stage_model = inference.load(run, config, "student_kd", 0)
  wave = _waves([16000], seed=5)[0]
  states = build_inputs(Corpus("c", ("a",), 16000, [Utterance("u", "s", 0)],
                               waveforms={"u": wave}),
                        ml_collections.ConfigDict({**config.stages.student_kd.input.to_dict(),
                                                   "cache_dir": None}))
  want = jax.nn.softmax(stage_model.model.apply(
      stage_model.variables, jnp.asarray(states.x), jnp.asarray(states.length))["logits"])
  input_cfg, on_waves = inference.on_waveforms(config.stages.student_kd.input, stage_model)
  assert input_cfg.kind == "waveform"
  got = export.probabilities_fn(on_waves, input_cfg, 16000, 16000)(on_waves.variables,
                                                                    jnp.asarray(wave[None]))
  np.testing.assert_allclose(got, want, atol=1e-5)


def test_all_states_feed_a_layer_weighting_and_a_fully_frozen_teacher(tmp_path):
  """`all_states`: states 0..k cached; a model on them mixes all L + 1 layers as the waveform
  model does, for k below the depth (layers above run) and at it (no encoder left), and its
  `full_params` are the waveform model's."""
  from jaxser import profile
  checkpoint = str(tmp_path / "whisper")
  save_tiny_whisper(transformers.WhisperModel, checkpoint, encoder_layers=3)
  waves = _waves([16000, 9000], seed=2)
  corpus = Corpus("c", ("a", "b"), 16000, [Utterance(f"u{i}", "s", i) for i in range(2)],
                  waveforms={f"u{i}": w for i, w in enumerate(waves)})
  x, n = _batch(waves, 16000)
  for k, frozen in ((2, False), (3, True)):
    # MLKD's teacher (k = 3, the depth) standardises each state's frame mean.
    kw = dict(checkpoint=checkpoint, freeze_layers=k, freeze_encoder=frozen, layer=-1,
              dropout=0.0, output_hidden_states=True, standardize_layers=frozen)
    on_waves = WhisperClassifier(2, frontend="whisper_logmel", **kw)
    variables = on_waves.load_pretrained(on_waves.init(jax.random.key(0), x, n))
    variables["params"]["layer_weights"] = jnp.arange(4.0)  # not the uniform start
    want = on_waves.apply(variables, x, n)
    arrays = build_inputs(corpus, ml_collections.ConfigDict(dict(
        kind="whisper_states", checkpoint=checkpoint, layer=k, all_states=True,
        max_seconds=1.0, normalize=False, cache_dir=str(tmp_path / "cache"))))
    assert arrays.x.shape == (2, 50, k + 1, 64) and list(arrays.length) == [50, 28]
    on_states = WhisperClassifier(2, frontend="whisper_states", **kw)
    s_x, s_n = jnp.asarray(arrays.x), jnp.asarray(arrays.length)
    s_vars = on_states.load_pretrained(on_states.init(jax.random.key(1), s_x, s_n))
    assert ("encoder" in s_vars["params"]) == (k < 3)
    s_vars["params"].update(layer_weights=variables["params"]["layer_weights"],
                            classifier=variables["params"]["classifier"])
    got = on_states.apply(s_vars, s_x, s_n)
    mask = np.asarray(want["frame_mask"])
    np.testing.assert_array_equal(got["frame_mask"], mask)
    for key in ("logits", "embedding"):
      np.testing.assert_allclose(got[key], want[key], atol=2e-5, err_msg=f"{key}, k={k}")
    np.testing.assert_allclose(np.asarray(got["hidden_states"]).transpose(0, 2, 1, 3)[mask],
                               np.asarray(want["hidden_states"]).transpose(0, 2, 1, 3)[mask],
                               atol=2e-5)
    full = on_states.full_params(s_vars["params"])
    again = on_waves.apply({**variables, "params": full}, x, n)
    np.testing.assert_allclose(again["logits"], want["logits"], atol=2e-5)
    # Size: the model's own part plus the frozen part its input holds = the waveform model.
    params, macs = encoder_layers.prefix_size(checkpoint, k, 16000, all_states=True)
    mine = profile.measure(on_states, s_vars, s_x[:1], s_n[:1], repeats=1)
    whole = profile.measure(on_waves, variables, x[:1], n[:1], repeats=1)
    assert mine["params"] + params == whole["params"]
    assert mine["macs"] + macs == pytest.approx(whole["macs"], rel=0.02)
  # In training, every state's mean is standardised over the batch, so is their mix.
  trained, _ = on_states.apply(s_vars, s_x, s_n, train=True, mutable=["batch_stats"])
  np.testing.assert_allclose(np.asarray(trained["embedding"]).mean(0), 0.0, atol=1e-4)
  with pytest.raises(ValueError, match="3 cached states for freeze_layers=3"):
    on_states.init(jax.random.key(1), s_x[:, :, :3], s_n)


def test_a_student_starts_from_a_teacher_on_cached_states(tmp_path):
  """MLKD's init_from: a teacher trained on cached states (no encoder weights of its own)
  gives the student the checkpoint's layers, as the same teacher on waveforms would."""
  checkpoint = str(tmp_path / "whisper")
  save_tiny_whisper(transformers.WhisperModel, checkpoint, encoder_layers=3)
  states = jnp.zeros((1, 10, 4, 64))
  teacher = WhisperClassifier(2, checkpoint=checkpoint, frontend="whisper_states",
                              freeze_layers=3, freeze_encoder=True, layer=-1)
  t_params = teacher.init(jax.random.key(0), states, jnp.array([10]))["params"]
  assert sorted(t_params) == ["classifier", "layer_weights"]
  student = WhisperClassifier(2, checkpoint=checkpoint, frontend="whisper_logmel",
                              num_hidden_layers=2, layer=-1)
  x, n = _batch(_waves([8000]), 8000)
  fresh = student.init(jax.random.key(1), x, n)
  got = student.init_from_teacher(fresh, teacher.full_params(t_params), (1, 3))["params"]
  _, encoder, _ = pretrained.load_whisper(checkpoint)
  np.testing.assert_array_equal(got["encoder"]["layers"]["1"]["fc2"]["kernel"],
                                encoder["layers"]["2"]["fc2"]["kernel"])
  np.testing.assert_array_equal(got["encoder"]["conv1"]["kernel"], encoder["conv1"]["kernel"])
  np.testing.assert_array_equal(got["classifier"]["kernel"], t_params["classifier"]["kernel"])


def test_the_encoders_output_cached_leaves_no_encoder_to_run(tmp_path):
  """freeze_layers = the depth on the one cached state: that state is the encoder's output
  (after its final layer norm), so the model holds no encoder part and its logits are the
  waveform model's (the norm applied once)."""
  import torch
  import transformers
  checkpoint = str(tmp_path / "whisper")
  model = save_tiny_whisper(transformers.WhisperModel, checkpoint, encoder_layers=2)
  with torch.no_grad():  # not the init's ones / zeros, so a norm left fresh shows
    model.encoder.layer_norm.weight.uniform_(0.5, 1.5)
    model.encoder.layer_norm.bias.uniform_(-0.5, 0.5)
  model.save_pretrained(checkpoint)
  waves = _waves([16000, 9000], seed=3)
  corpus = Corpus("c", ("a", "b"), 16000, [Utterance(f"u{i}", "s", i) for i in range(2)],
                  waveforms={f"u{i}": w for i, w in enumerate(waves)})
  arrays = build_inputs(corpus, ml_collections.ConfigDict(dict(
      kind="whisper_states", checkpoint=checkpoint, layer=2, max_seconds=1.0, normalize=False,
      cache_dir=str(tmp_path / "cache"))))
  kw = dict(checkpoint=checkpoint, freeze_layers=2, dropout=0.0)
  x, n = _batch(waves, 16000)
  on_waves = EmoDistillWhisperStudent(2, frontend="whisper_logmel", **kw)
  variables = on_waves.load_pretrained(on_waves.init(jax.random.key(0), x, n))
  on_states = EmoDistillWhisperStudent(2, frontend="whisper_states", **kw)
  s_x, s_n = jnp.asarray(arrays.x), jnp.asarray(arrays.length)
  s_vars = on_states.load_pretrained(on_states.init(jax.random.key(1), s_x, s_n))
  assert "encoder" not in s_vars["params"]
  s_vars["params"].update({k: v for k, v in variables["params"].items() if k != "encoder"})
  for key in ("logits", "embedding"):
    np.testing.assert_allclose(on_states.apply(s_vars, s_x, s_n)[key],
                               on_waves.apply(variables, x, n)[key], atol=2e-5, err_msg=key)
