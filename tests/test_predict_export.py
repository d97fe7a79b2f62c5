"""`python -m jaxser.predict` and `python -m jaxser.export` on a tiny trained quickstart run."""

import csv
import io
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import soundfile as sf

import fixtures
from jaxser import export, inference, io_utils, predict, train
from jaxser.config_utils import to_dict
from jaxser.data import synthetic
from jaxser.features import audio, fbank, frontend
from tiny_config import ROOT, tiny_quickstart

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "JAX_PLATFORMS": "cpu"}
EMODB_WAVS = sorted((fixtures.EMODB_REAL / "wav").glob("*.wav"))[:40:10]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  """The tiny quickstart (1 s windows), teacher and KD student, 2 folds of 1 epoch."""
  c = tiny_quickstart(epochs=1)
  c.protocol.max_folds = 2
  c.stage_order = ("teacher", "student_kd")
  c.report.latency_repeats = 0
  workdir = str(tmp_path_factory.mktemp("predict") / "run")
  train.run(c, workdir)
  return workdir


def _predict(argv, capsys):
  rc = predict.main(argv)
  out = capsys.readouterr()
  return rc, out.out, out.err


def _noise(seconds, sr, seed, channels=1):
  shape = (int(seconds * sr), channels) if channels > 1 else (int(seconds * sr),)
  return (0.1 * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


def test_predict_matches_the_runs_evaluation_and_reports_bad_files(run_dir, tmp_path, capsys):
  # Test clips of fold 0, written losslessly: predict must label them as the run's own
  # evaluation of the best checkpoint did (result.json).
  config = inference.read_config(run_dir)
  corpus = synthetic.build(config.corpus)
  result = io_utils.read_json(os.path.join(run_dir, "fold_0", "student_kd", "result.json"))
  ids = result["predictions"]["ids"][:6]
  os.makedirs(tmp_path / "corpus")
  for i in ids:
    sf.write(tmp_path / "corpus" / f"{i}.wav", corpus.waveforms[i], 16000, subtype="FLOAT")
  rc, out, err = _predict(["--run", run_dir, str(tmp_path / "corpus")], capsys)
  assert rc == 0, err
  rows = [json.loads(line) for line in out.splitlines()]
  assert [os.path.basename(r["file"]) for r in rows] == sorted(f"{i}.wav" for i in ids)
  pred = dict(zip(result["predictions"]["ids"], result["predictions"]["pred"]))
  for r in rows:
    assert list(r["probabilities"]) == list(synthetic.CLASS_NAMES)
    assert abs(sum(r["probabilities"].values()) - 1) < 1e-4
    assert r["emotion"] == synthetic.CLASS_NAMES[pred[os.path.basename(r["file"])[:-4]]]

  # Stereo 48 kHz (channels averaged, resampled), a clip longer than the 1 s window, a
  # broken file and one with NaN: the good ones are labelled, the bad ones named, exit 1.
  d = tmp_path / "mixed"
  os.makedirs(d)
  sf.write(d / "a_stereo48k.wav", _noise(1.2, 48000, 1, channels=2), 48000)
  sf.write(d / "b_long.wav", _noise(3.2, 16000, 2), 16000)
  (d / "c_broken.wav").write_bytes(b"RIFF" + bytes(range(256)))
  nan = _noise(0.5, 16000, 3)
  nan[7] = np.nan
  sf.write(d / "d_nan.wav", nan, 16000, subtype="FLOAT")
  # The stereo file as the run's loader reads it, as a 16 kHz mono file: the same labels.
  sf.write(d / "e_mono16k.wav", audio.load_wav(str(d / "a_stereo48k.wav"), 16000), 16000,
           subtype="FLOAT")
  out = subprocess.run([sys.executable, "-m", "jaxser.predict", "--run", run_dir, "--windows",
                        str(d)], env=ENV, capture_output=True, text=True, cwd=ROOT)
  assert out.returncode == 1, out.stderr[-2000:]
  rows = {os.path.basename(r["file"]): r for r in map(json.loads, out.stdout.splitlines())}
  assert sorted(rows) == ["a_stereo48k.wav", "b_long.wav", "e_mono16k.wav"]
  errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 2 and "c_broken.wav" in errors[0] and "d_nan.wav" in errors[1], errors
  assert "NaN" in errors[1] and "Traceback" not in out.stderr
  for k, v in rows["a_stereo48k.wav"]["probabilities"].items():
    assert abs(v - rows["e_mono16k.wav"]["probabilities"][k]) < 1e-5
  # 3.2 s in 1 s windows every 0.5 s: 5 windows; the file's probabilities are their mean.
  windows = rows["b_long.wav"]["windows"]
  assert [(w["start"], w["end"]) for w in windows] == [(0.5 * k, 0.5 * k + 1) for k in range(5)]
  mean = np.mean([list(w["probabilities"].values()) for w in windows], axis=0)
  np.testing.assert_allclose(list(rows["b_long.wav"]["probabilities"].values()), mean, atol=2e-6)
  assert len(rows["a_stereo48k.wav"]["windows"]) == 1 + (1.2 - 1.0) // 0.5


def test_ensemble_csv_averages_the_folds(run_dir, tmp_path, capsys):
  for k in range(2):
    sf.write(tmp_path / f"clip{k}.wav", _noise(0.9, 16000, 10 + k), 16000)
  files = [str(tmp_path / f"clip{k}.wav") for k in range(2)]
  single = []
  for fold in (0, 1):
    rc, out, err = _predict(["--run", run_dir, "--fold", str(fold)] + files, capsys)
    assert rc == 0, err
    single.append([list(json.loads(line)["probabilities"].values()) for line in out.splitlines()])
  rc, out, err = _predict(["--run", run_dir, "--ensemble", "--format", "csv"] + files, capsys)
  assert rc == 0, err
  rows = list(csv.reader(io.StringIO(out)))
  assert rows[0] == ["file", "emotion"] + list(synthetic.CLASS_NAMES)
  assert [r[0] for r in rows[1:]] == files
  probs = np.asarray([[float(v) for v in r[2:]] for r in rows[1:]])
  np.testing.assert_allclose(probs, np.mean(single, axis=0), atol=2e-6)
  assert [r[1] for r in rows[1:]] == [synthetic.CLASS_NAMES[i] for i in probs.argmax(1)]


def test_refusals_name_the_setting_and_the_fix(run_dir, tmp_path, capsys):
  sf.write(tmp_path / "x.wav", _noise(0.5, 16000, 0), 16000)
  wav = str(tmp_path / "x.wav")
  rc, _, err = _predict(["--run", run_dir, "--fold", "3", wav], capsys)
  assert rc == 2 and err.startswith("error:") and "choose --fold from [0, 1]" in err
  rc, _, err = _predict(["--run", str(tmp_path / "nowhere"), wav], capsys)
  assert rc == 2 and "is not a directory" in err
  rc, _, err = _predict(["--run", run_dir, "--stage", "student", wav], capsys)
  assert rc == 2 and "['teacher', 'student_kd']" in err
  # A stage standardised with fold statistics cannot label one file.
  other = tmp_path / "run_train_norm"
  os.makedirs(other)
  config = io_utils.read_json(os.path.join(run_dir, "config.json"))
  config["stages"]["student_kd"]["input"]["normalization"] = "train"
  io_utils.write_json(str(other / "config.json"), config)
  rc, _, err = _predict(["--run", str(other), wav], capsys)
  assert rc == 2 and "normalization='train'" in err and "--stage (teacher)" in err
  # Export builds the front end into the graph: eGeMAPS functionals have none.
  assert export.main(["--run", run_dir, "--stage", "teacher", "--out", str(tmp_path / "e")]) == 2
  err = capsys.readouterr().err
  assert "'egemaps_functionals'" in err and "['waveform', 'logfbank']" in err
  assert not os.path.exists(tmp_path / "e")


def _jax_probabilities(sm, x, length):
  logits = sm.model.apply(sm.variables, x, length, train=False)["logits"]
  return np.asarray(jax.nn.softmax(logits, axis=-1))


@pytest.mark.skipif(not EMODB_WAVS, reason="no EmoDB copy in shared/data/emodb")
def test_export_savedmodel_and_tflite_match_jax_on_emodb(run_dir, tmp_path, capsys):
  import tensorflow as tf
  out = tmp_path / "export"
  assert export.main(["--run", run_dir, "--fold", "1", "--out", str(out)]) == 0
  printed = capsys.readouterr().out
  meta = io_utils.read_json(out / "model.json")
  assert meta["output"]["classes"] == list(synthetic.CLASS_NAMES)
  n = meta["input"]["shape"][1]
  assert (n, meta["input"]["sample_rate"]) == (16000, 16000)  # the stage's 1 s window
  for name in ("saved_model", "model.tflite", "model.json"):
    assert str(out / name) in printed
  # Real speech (22.05 kHz, resampled by the project's loader), the first 1 s of each clip.
  clips = np.stack([audio.load_wav(str(p), 16000)[:n] for p in EMODB_WAVS])
  sm = inference.load(run_dir, inference.read_config(run_dir), "student_kd", 1)
  expected = _jax_probabilities(sm, np.stack([audio.normalize(c) for c in clips]),
                                np.full(len(clips), n, np.int32))
  served = tf.saved_model.load(str(out / "saved_model")).signatures["serving_default"]
  got = served(audio=tf.constant(clips))["probabilities"].numpy()
  assert np.abs(got - expected).max() <= 1e-4
  got = np.concatenate([export.run_tflite(str(out / "model.tflite"), c[None]) for c in clips])
  assert np.abs(got - expected).max() <= 1e-4
  assert np.allclose(got.sum(1), 1, atol=1e-5)


def _emodb_or_noise(k: int) -> np.ndarray:
  if EMODB_WAVS:
    return audio.load_wav(str(EMODB_WAVS[k % len(EMODB_WAVS)]), 16000)
  return _noise(1.7, 16000, k)


def test_jnp_logfbank_matches_numpy():
  for k in range(2):
    w = _emodb_or_noise(k)
    for nfft in (None, 512):  # 512 truncates the 640-sample window, as the reference does
      ref = fbank.logfbank(w, 16000, nfft=nfft)
      got = np.asarray(frontend.logfbank(w[None], 16000, nfft=nfft))[0]
      assert got.shape == ref.shape
      assert np.abs(got - ref).max() < 1e-3, (k, nfft)
  short = np.ones(300, np.float32)  # shorter than one window: one zero-padded frame
  np.testing.assert_allclose(np.asarray(frontend.logfbank(short[None], 16000))[0],
                             fbank.logfbank(short, 16000), atol=1e-4)
  silent = np.zeros(3000, np.float32)  # log of the float eps, as the reference
  np.testing.assert_array_equal(np.asarray(frontend.logfbank(silent[None], 16000))[0],
                                fbank.logfbank(silent, 16000))


def test_frontends_give_the_training_inputs():
  import ml_collections
  from jaxser.data.corpus import Corpus, Utterance
  from jaxser.data.inputs import build_inputs
  w = _emodb_or_noise(0)[:int(1.7 * 16000)]
  utt = Utterance("clip", "", 0)
  corpus = Corpus("one", ("x",), 16000, [utt], waveforms={utt.id: w})
  for spec in (dict(kind="waveform", max_seconds=1.7, normalize=True),
               dict(kind="logfbank", max_seconds=2.0, num_filters=40, normalize=True)):
    arrays = build_inputs(corpus, ml_collections.ConfigDict(spec))
    x, length = frontend.build(spec, 16000, len(w))(w[None])
    assert x.shape == arrays.x.shape and int(length[0]) == int(arrays.length[0]), spec
    assert np.abs(np.asarray(x) - arrays.x).max() < 1e-3, spec


def test_logfbank_stage_exports_to_tflite(tmp_path):
  """A stage on log filterbanks (no training: an initialised model saved as the best
  checkpoint of a run directory): the TFLite model matches the JAX one."""
  from jaxser import trainer
  from jaxser.checkpoints import StageCheckpoints
  from jaxser.stage_plan import resolve_stage_train
  from jaxser.models.registry import build_model
  c = tiny_quickstart()
  c.stage_order = ("student_kd",)
  c.stages.student_kd.teachers = ()
  c.stages.student_kd.model = dict(name="spectral_cnn", features=(4, 8), hidden=8)
  c.stages.student_kd.input = dict(kind="logfbank", max_seconds=0.5, num_filters=24,
                                   normalize=True)
  run = str(tmp_path / "run")
  io_utils.write_json(os.path.join(run, "config.json"), to_dict(c))
  config = inference.read_config(run)
  model = build_model(config.stages.student_kd.model, 4)
  spec = dict(to_dict(config.stages.student_kd.input))
  x, length = frontend.build(spec, 16000, 8000)(np.zeros((1, 8000), np.float32))
  tx = trainer.make_optimizer(resolve_stage_train(config, "student_kd"), 1)
  state = trainer.create_state(model, {"x": np.asarray(x), "length": np.asarray(length)}, tx,
                               jax.random.PRNGKey(3))
  ckpts = StageCheckpoints(os.path.join(run, "fold_0", "student_kd", "checkpoints"))
  ckpts.save_best(0, state, {"epoch": 0})
  ckpts.close()
  written = export.export(run, formats=("tflite",), out=str(tmp_path / "e"), log=lambda _: None)
  assert set(written) == {"tflite", "metadata", "max_abs_diff"}
  clip = _emodb_or_noise(1)[:8000]
  sm = inference.load(run, config, "student_kd", 0)
  feats = fbank.logfbank(clip, 16000, num_filters=24)
  feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-5)  # per clip, as training does
  expected = _jax_probabilities(sm, np.pad(feats, ((0, 50 - len(feats)), (0, 0)))[None],
                                np.asarray([len(feats)], np.int32))
  got = export.run_tflite(written["tflite"], clip[None])
  assert np.abs(got - expected).max() <= 1e-4


def test_a_stage_example_has_the_shape_training_gives_a_clip():
  """Export, predict and the profile command shape a stage's input by the training builder
  (a 2 s log-fbank stage: 2 s / 10 ms = 200 frames, however long the clip)."""
  import ml_collections
  from jaxser.data.corpus import Corpus, Utterance
  from jaxser.data.inputs import build_inputs
  from tiny_config import load_config
  config = load_config("dkdfmh_emodb")
  x, length = inference.stage_example(config, "cnn")
  sr = int(config.corpus.sample_rate)
  utt = Utterance("long", "s", 0)
  wave = _noise(2.6, sr, seed=3)  # longer than the stage's 2 s: cut as in training
  arrays = build_inputs(Corpus("c", inference.classes(config), sr, [utt], waveforms={"long": wave}),
                        ml_collections.ConfigDict(to_dict(config.stages.cnn.input)))
  assert x.shape == arrays.x[:1].shape == (1, 200, 40)
  assert 0 < int(length[0]) <= 200 and int(arrays.length[0]) == 200
