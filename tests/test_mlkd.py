"""MLKD: student initialised from the teacher's even layers, layer-paired hidden-state loss,
and a tiny end-to-end run with noisy training and the noisy test grid."""

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from jaxser import losses, train, trainer
from jaxser.data import teacher_cache
from jaxser.methods import mlkd
from jaxser.models.w2v2_classifier import W2V2Classifier
from fixtures import save_tiny_whisper
from jaxser.data.inputs import build_inputs
from jaxser.data.registry import load_corpus
from tiny_config import load_config


def _init(model, seed):
  x = jnp.zeros((1, 4000), jnp.float32)
  return jax.jit(lambda k: model.init({"params": k}, x, jnp.array([4000])))(jax.random.key(seed))


def test_student_starts_from_the_teachers_even_layers():
  teacher = W2V2Classifier(4, preset="tiny-wav2vec2", num_hidden_layers=4, projector_size=8)
  student = W2V2Classifier(4, preset="tiny-wav2vec2", num_hidden_layers=2, projector_size=8)
  t_params = jax.device_get(_init(teacher, 0)["params"])
  fresh = jax.device_get(_init(student, 1))
  out = student.init_from_teacher(fresh, t_params, (2, 4))["params"]
  enc_s, enc_t = out["wav2vec2"]["encoder"]["layers"], t_params["wav2vec2"]["encoder"]["layers"]
  assert sorted(enc_s) == ["0", "1"]
  for s_layer, t_layer in (("0", "1"), ("1", "3")):  # student layer i <- teacher layer 2i
    a, b = flatten_dict(enc_s[s_layer]), flatten_dict(enc_t[t_layer])
    assert a.keys() == b.keys()
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])
  rest = lambda p: {k: v for k, v in flatten_dict(p).items() if "layers" not in k}
  rs, rt = rest(out), rest(t_params)
  assert rs.keys() == rt.keys()
  for k in rs:
    np.testing.assert_array_equal(rs[k], rt[k])
  # The student's own fresh layers are gone: these are not the values it was initialised with.
  assert not np.array_equal(flatten_dict(enc_s["0"])[("attention", "k_proj", "kernel")],
                            flatten_dict(fresh["params"]["wav2vec2"]["encoder"]["layers"]["0"])[
                                ("attention", "k_proj", "kernel")])


def test_hidden_state_loss_pairs_layers_and_ignores_padding():
  rng = np.random.default_rng(0)
  b, t, d = 3, 6, 4
  student = {"logits": jnp.asarray(rng.standard_normal((b, 5)), jnp.float32),
             "hidden_states": jnp.asarray(rng.standard_normal((b, 3, t, d)), jnp.float32),
             "frame_mask": jnp.asarray(np.arange(t)[None, :] < np.array([[6], [4], [2]]))}
  teacher_h = rng.standard_normal((b, 5, t, d)).astype(np.float32)
  teacher = {"T": {"logits": jnp.asarray(rng.standard_normal((b, 5)), jnp.float32),
                   "hidden_states": jnp.asarray(teacher_h)}}
  batch = {"label": jnp.asarray([0, 1, 2]), "mask": jnp.ones(b)}
  cfg = ml_collections.ConfigDict(dict(teacher="T", alpha=0.7, temperature=7.0, layer_map=()))
  total, parts = mlkd.mlkd(student, teacher, batch, cfg)
  fm = np.asarray(student["frame_mask"], np.float64)
  want = 0.0
  for t_layer, s_layer in ((2, 1), (4, 2)):
    sq = ((np.asarray(student["hidden_states"])[:, s_layer] - teacher_h[:, t_layer]) ** 2).sum(-1)
    want += (sq * fm).sum() / (fm.sum() * d)
  np.testing.assert_allclose(float(parts["mse"]), want, rtol=1e-5)
  np.testing.assert_allclose(float(total), 0.7 * float(parts["kd"]) + 0.3 * float(parts["ce"])
                             + want, rtol=1e-5)
  # Unpaired teacher layers (0, 1, 3) and padded frames do not count.
  changed = teacher_h.copy()
  changed[:, [0, 1, 3]] += 5.0
  changed[1, :, 4:] += 5.0
  changed[2, :, 2:] += 5.0
  teacher["T"]["hidden_states"] = jnp.asarray(changed)
  np.testing.assert_allclose(float(mlkd.mlkd(student, teacher, batch, cfg)[1]["mse"]), want,
                             rtol=1e-5)


def test_tiny_mlkd_run_with_noisy_training_and_test_grid(tmp_path, monkeypatch):
  valid_x = {}  # stage -> the first validation batch its best epoch is chosen on
  fit = trainer.fit

  def recording_fit(**kw):
    valid_x[kw["desc"].split()[-1]] = next(iter(kw["valid_data"]))["x"].numpy()
    return fit(**kw)

  monkeypatch.setattr(trainer, "fit", recording_fit)
  c = load_config("mlkd_emodb")
  c.corpus = dict(name="synthetic", seed=0, num_speakers=8, utterances_per_speaker=4,
                  min_seconds=0.5, max_seconds=1.0)
  c.protocol = dict(name="speaker_kfold", num_folds=4, valid_speakers=1, max_folds=1)
  c.train.update(dict(epochs=1, batch_size=4, eval_batch_size=8))
  c.eval_noise.update(dict(types=("white", "babble"), snr_db=(0.0, 10.0), babble_k=2))
  c.report.latency_repeats = 2
  # The teacher reads cached states of its frozen encoder, so it needs a checkpoint.
  checkpoint = str(tmp_path / "whisper")
  save_tiny_whisper(pytest.importorskip("transformers").WhisperModel, checkpoint,
                    encoder_layers=6)
  c.stages.teacher.input.update(dict(checkpoint=checkpoint, cache_dir=str(tmp_path / "states")))
  for name, stage in c.stages.items():
    stage.input.max_seconds = 0.5
    stage.model.checkpoint = checkpoint
    if name != "teacher":
      stage.noise.update(dict(types=("pink", "babble"), babble_k=2))
  c.stages.teacher.train.update(dict(epochs=1, batch_size=4, refit=False))
  workdir = str(tmp_path / "run")
  rep = train.run(c, workdir)
  cache_dir = os.path.join(workdir, "fold_0", "cache", "teacher")
  cache = teacher_cache.read(cache_dir)
  # 6 layers + the encoder input; 0.5 s is 50 log-mel frames, 25 encoder frames.
  assert cache.arrays["hidden_states"].shape[1:3] == (7, 25)
  assert cache.arrays["hidden_states"].dtype == np.float16
  assert teacher_cache.read_params(cache_dir) is not None
  # The grid covers the students; the teacher's input is the cached clean states.
  for stage in c.stage_order:
    result = json.load(open(os.path.join(workdir, "fold_0", stage, "result.json")))
    assert sorted(result["noisy"]) == ([] if stage == "teacher" else
                                       ["babble@0", "babble@10", "white@0", "white@10"])
  assert set(rep["noisy"]) == {"student_alone", "mlkd"}
  md = open(os.path.join(workdir, "report.md")).read()
  assert "Noisy test speech" in md and "| 0 |" in md
  # noise.valid: the students are selected on noisy validation clips, both on the same
  # ones, none of them a clean clip; the teacher on the clean clips' states.
  assert c.stages.mlkd.noise.valid and "noise" not in c.stages.teacher
  assert valid_x["teacher"].shape[2:] == (7, 64)
  np.testing.assert_array_equal(valid_x["student_alone"], valid_x["mlkd"])
  clean = build_inputs(load_corpus(c.corpus), c.stages.mlkd.input).x
  nearest = np.abs(valid_x["mlkd"][:, None] - clean[None]).max(axis=2).min(axis=1)
  assert (nearest > 1e-3).all()  # 0 for a clean clip


def test_iemocap_config_is_the_papers_setting():
  import importlib.util
  from tiny_config import ROOT
  spec = importlib.util.spec_from_file_location("c", os.path.join(ROOT, "configs",
                                                                  "mlkd_iemocap.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config()
  assert (c.train.optimizer, c.train.learning_rate, c.train.batch_size) == ("adamw", 5e-5, 8)
  assert c.protocol.name == "leave_one_speaker_out" and c.corpus.classes == "4class"
  assert c.stages.mlkd.init_from.layers == (2, 4, 6, 8, 10, 12)
  assert c.stages.mlkd.model.num_hidden_layers == 6
  assert (c.stages.mlkd.loss_cfg.alpha, c.stages.mlkd.loss_cfg.temperature) == (0.7, 7.0)


def test_an_empty_eval_noise_types_means_every_noise_as_for_training(tmp_path):
  from tiny_config import tiny_quickstart
  c = tiny_quickstart(epochs=1)
  c.stage_order = ("student_alone",)
  c.report.latency_repeats = 0
  c.eval_noise = dict(types=(), snr_db=(10.0,), babble_k=2)
  rep = train.run(c, str(tmp_path / "run"))
  grid = rep["noisy"]["student_alone"]
  # The generators and babble, each at the one SNR: never an empty grid.
  assert {"white@10", "pink@10", "brown@10", "babble@10"} <= set(grid), grid
