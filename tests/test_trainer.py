"""The generic trainer: sharding invariance, kill-and-resume, bad input, cache and join."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from jaxser import io_utils, train
from jaxser.checkpoints import StageCheckpoints
from jaxser.data import teacher_cache
from jaxser.data.inputs import InputArrays
from jaxser.data.pipeline import Pipeline
from jaxser.errors import UserError
from tiny_config import ROOT, tiny_mlps, tiny_quickstart

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "JAX_PLATFORMS": "cpu"}


def _steps(devices: int):
  env = {**ENV, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
  out = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "sharded_steps.py")],
                       env=env, capture_output=True, text=True, check=True, cwd=ROOT)
  return json.loads(out.stdout.strip().splitlines()[-1])


def test_one_and_eight_devices_give_the_same_losses():
  one, eight = _steps(1), _steps(8)
  assert (one["devices"], eight["devices"]) == (1, 8)
  a, b = np.asarray(one["losses"]), np.asarray(eight["losses"])
  assert len(a) == 6
  np.testing.assert_array_less(np.abs(a - b) / np.abs(a), 1e-5)


class _Killed(Exception):
  pass


def _report(workdir):
  with open(os.path.join(workdir, "report.json")) as f:
    rep = json.load(f)
  return rep["summary"], rep["per_fold"]


def test_kill_and_resume_gives_the_same_metrics(tmp_path, monkeypatch):
  config = tiny_quickstart(epochs=3)
  full = train.run(config, str(tmp_path / "full"))

  # Kill the student_kd stage right after its second latest-checkpoint save.
  original, calls = StageCheckpoints.save_latest, {"n": 0}

  def save_then_die(self, step, state, meta):
    original(self, step, state, meta)
    if "student_kd" in self.directory:
      calls["n"] += 1
      if calls["n"] == 2:
        calls["seconds"] = meta["seconds"]
        raise _Killed()

  monkeypatch.setattr(StageCheckpoints, "save_latest", save_then_die)
  with pytest.raises(_Killed):
    train.run(config, str(tmp_path / "resumed"))
  assert not os.path.exists(tmp_path / "resumed" / "report.json")
  monkeypatch.setattr(StageCheckpoints, "save_latest", original)
  resumed = train.run(config, str(tmp_path / "resumed"))

  assert calls["n"] == 2
  kd = json.load(open(tmp_path / "resumed" / "fold_0" / "student_kd" / "result.json"))
  assert kd["epochs_run"] == 3 and len(kd["history"]) == 3
  assert kd["train_seconds"] > calls["seconds"] > 0  # epoch time carries over the resume
  assert _report(tmp_path / "full") == _report(tmp_path / "resumed")
  assert full["summary"]["student_kd"]["ua"] == resumed["summary"]["student_kd"]["ua"]


def test_a_deleted_teacher_cache_is_rebuilt_from_the_best_checkpoint(tmp_path, capsys):
  """A cache a stage still to run reads is rebuilt from the teacher's best checkpoint."""
  import shutil
  config = tiny_quickstart(epochs=2)
  workdir = str(tmp_path / "run")
  train.run(config, workdir)
  cache_dir = os.path.join(workdir, "fold_0", "cache", "teacher")
  kd_dir = os.path.join(workdir, "fold_0", "student_kd")
  before = np.load(os.path.join(cache_dir, "logits.npy"))
  kd_before = json.load(open(os.path.join(kd_dir, "result.json")))
  shutil.rmtree(cache_dir)
  shutil.rmtree(kd_dir)
  capsys.readouterr()
  train.run(config, workdir)
  out = capsys.readouterr().out
  assert "teacher cache rebuilt from the best checkpoint" in out
  assert "student_alone: done earlier" in out and "student_kd: test UA" in out
  np.testing.assert_array_equal(np.load(os.path.join(cache_dir, "logits.npy")), before)
  kd_after = json.load(open(os.path.join(kd_dir, "result.json")))
  assert kd_after["test"] == kd_before["test"]


def test_a_teacher_cache_no_stage_still_reads_is_not_rebuilt(tmp_path, capsys):
  """Caches and checkpoints may stay on the machine that ran: a checkout with every reader of
  a teacher done trains nothing, even with neither the cache nor a checkpoint there."""
  import glob
  import shutil
  config = tiny_quickstart(epochs=2)
  workdir = str(tmp_path / "run")
  first = train.run(config, workdir)
  fold = os.path.join(workdir, "fold_0")
  shutil.rmtree(os.path.join(fold, "cache"))
  checkpoints = glob.glob(os.path.join(fold, "*", "checkpoints"))
  assert len(checkpoints) == 3
  for path in checkpoints:
    shutil.rmtree(path)
  capsys.readouterr()
  again = train.run(config, workdir)
  out = capsys.readouterr().out
  assert "teacher: done earlier" in out and "epoch 1:" not in out and "training again" not in out
  assert not os.path.exists(os.path.join(fold, "cache"))
  assert again["summary"] == first["summary"]


def test_folds_run_separately_then_report_together(tmp_path, capsys):
  config = tiny_quickstart(epochs=1)
  config.protocol.max_folds = 2
  workdir = str(tmp_path / "run")
  part = train.run(config, workdir, "1")
  assert set(part["per_fold"]["student_kd"]) == {"fold_1"}
  assert not os.path.exists(os.path.join(workdir, "fold_0"))
  capsys.readouterr()
  whole = train.run(config, workdir)
  out = capsys.readouterr().out
  assert "fold_1 student_kd: done earlier" in out and "fold_0 student_kd: test UA" in out
  assert whole["protocol"]["folds"] == 2
  assert set(whole["per_fold"]["student_kd"]) == {"fold_0", "fold_1"}
  assert whole["per_fold"]["student_kd"]["fold_1"] == part["per_fold"]["student_kd"]["fold_1"]
  # A later run of some folds writes their own report and leaves the whole run's as it was.
  with open(os.path.join(workdir, "report.md"), "rb") as f:
    whole_md = f.read()
  train.run(config, workdir, "1")
  with open(os.path.join(workdir, "report.md"), "rb") as f:
    assert f.read() == whole_md
  assert json.load(open(os.path.join(workdir, "report.folds_1.json")))["protocol"]["folds"] == 1
  assert os.path.exists(os.path.join(workdir, "report.folds_1_confusion_student_kd.png"))


def test_a_stage_seed_replaces_the_run_seed_for_that_stage_only(tmp_path):
  """`train.seed` draws a stage's initialisation, batch order and dropout (repeats of one row);
  set to the run's seed it trains what the stage without it trains."""
  from jaxser.config_utils import stage_train

  def teacher_history(seed):
    config = tiny_mlps(epochs=3)
    config.stage_order = ("teacher",)
    if seed is not None:
      config.stages.teacher.train = stage_train(seed=seed)
    workdir = str(tmp_path / f"seed_{seed}")
    rep = train.run(config, workdir)
    result = io_utils.read_json(os.path.join(workdir, "fold_0", "teacher", "result.json"))
    return result["history"], rep["per_fold"]["teacher"]["fold_0"]

  history, test = teacher_history(None)
  assert teacher_history(tiny_mlps().seed) == (history, test)
  other, _ = teacher_history(7)
  assert [e["train/loss"] for e in other] != [e["train/loss"] for e in history]
  assert "seed" not in stage_train() and stage_train(seed=7).seed == 7  # hashes stay as they were


def test_report_only_reports_finished_folds_while_a_run_holds_them(tmp_path, capsys):
  from jaxser import locks
  config = tiny_quickstart(epochs=1)
  config.protocol.max_folds = 2
  config.report.latency_repeats = 0
  workdir = str(tmp_path / "run")
  with pytest.raises(UserError, match="holds no run"):
    train.run(config, workdir, report_only=True)
  part = train.run(config, workdir, "1")
  os.remove(os.path.join(workdir, "report.folds_1.json"))
  capsys.readouterr()
  # Another process holds fold_1 (as a fold job of scripts/run_folds.sh would).
  with locks.fold_locks(workdir, ["fold_1"]):
    rep = train.run(config, workdir, report_only=True)
  out = capsys.readouterr().out
  assert "fold_0: left out of the report, still to run: teacher, student_alone, student_kd" in out
  assert "epoch" not in out and not os.path.exists(os.path.join(workdir, "fold_0"))
  assert rep["per_fold"] == part["per_fold"]
  assert json.load(open(os.path.join(workdir, "report.folds_1.json")))["per_fold"] == rep["per_fold"]
  with pytest.raises(UserError, match="no fold .* has a result for every stage"):
    train.run(config, workdir, "0", report_only=True)


def test_folds_label_names_runs_of_folds():
  assert train.folds_label([5, 0, 1, 2]) == "0-2_5"
  assert train.folds_label([3]) == "3"
  assert train.folds_label([1, 3, 4]) == "1_3-4"


def test_variants_share_a_run_directory(tmp_path, capsys):
  """Stage subsets with their own report names (a config's variants) reuse each other's stages."""
  workdir = str(tmp_path / "run")
  first = tiny_quickstart(epochs=1)
  first.stage_order = ("teacher", "student_alone")
  train.run(first, workdir)
  capsys.readouterr()
  second = tiny_quickstart(epochs=1)
  second.name, second.stage_order = "sweep", ("teacher", "student_kd")
  second.report.file = "report_sweep"
  rep = train.run(second, workdir)
  out = capsys.readouterr().out
  # The teacher is not trained again (its cache, unused by the first run, is written now).
  assert "fold_0 teacher epoch" not in out and "student_kd: test UA" in out
  assert "student_alone" not in out and rep["stages"] == ["teacher", "student_kd"]
  first_rep = json.loads((tmp_path / "run" / "report.json").read_text())
  assert first_rep["stages"] == ["teacher", "student_alone"]
  sweep_md = (tmp_path / "run" / "report_sweep.md").read_text()
  assert "student_kd" in sweep_md
  # Each report links its own images; the first report's teacher image is not overwritten.
  assert "](report_sweep_confusion_teacher.png)" in sweep_md
  for name in ("report_confusion_teacher.png", "report_sweep_confusion_teacher.png",
               "report_sweep_confusion_student_kd.png"):
    assert (tmp_path / "run" / name).is_file(), name
  assert not (tmp_path / "run" / "report_confusion_student_kd.png").exists()


def test_folds_flag_values():
  assert train.parse_folds(None, 10) is None
  assert train.parse_folds("0,2-4, 9", 10) == [0, 2, 3, 4, 9]
  with pytest.raises(UserError, match=r"folds \[10\] do not exist; this config has 10"):
    train.parse_folds("8-10", 10)
  with pytest.raises(UserError, match="not an index"):
    train.parse_folds("a", 10)


def test_missing_workdir_parent_is_a_clear_error(tmp_path):
  with pytest.raises(UserError, match="parent directory .* does not exist"):
    train.run(tiny_quickstart(), str(tmp_path / "no" / "such" / "run"))


def test_the_default_run_directory_parent_is_made(tmp_path):
  """`--workdir` left out means runs/<name>: a fresh clone has no runs/ yet."""
  workdir = tmp_path / "runs" / "quickstart"
  train.prepare_workdir(str(workdir), tiny_quickstart(), make_parents=True)
  assert (workdir / "config.json").exists()


def test_a_changed_config_does_not_reuse_a_run_directory(tmp_path):
  config = tiny_quickstart()
  train.prepare_workdir(str(tmp_path), config)
  before = (tmp_path / "config.json").read_text()
  config.train.epochs = 5
  with pytest.raises(UserError, match=r"different config .*'train'"):
    train.prepare_workdir(str(tmp_path), config)
  assert (tmp_path / "config.json").read_text() == before
  # A subset of the stages (or another order) may share the directory and leaves the record.
  config.train.epochs = tiny_quickstart().train.epochs
  order = list(config.stage_order)
  assert len(order) >= 2
  config.stage_order = tuple(reversed(order))
  train.prepare_workdir(str(tmp_path), config)
  assert (tmp_path / "config.json").read_text() == before


def test_the_recorded_stage_order_gains_the_stages_later_runs_add(tmp_path):
  config = tiny_quickstart()
  order = list(config.stage_order)
  config.stage_order = (order[-1],)
  train.prepare_workdir(str(tmp_path), config)
  config.stage_order = tuple(order)
  train.prepare_workdir(str(tmp_path), config)
  recorded = json.loads((tmp_path / "config.json").read_text())
  assert recorded["stage_order"] == [order[-1]] + order[:-1]


def test_a_config_that_gains_stages_keeps_its_run_directory(tmp_path):
  """New stages (a config's new variant) join the record; a stage both define must match."""
  config = tiny_quickstart()
  train.prepare_workdir(str(tmp_path), config)
  more = tiny_quickstart()
  with more.stages.unlocked():
    more.stages.student_kd_long = more.stages.student_kd.to_dict()
  more.stages.student_kd_long.train.epochs = 9
  more.stage_order = ("teacher", "student_kd_long")
  train.prepare_workdir(str(tmp_path), more)
  recorded = json.loads((tmp_path / "config.json").read_text())
  assert recorded["stage_order"] == list(config.stage_order) + ["student_kd_long"]
  assert recorded["stages"]["student_kd_long"]["train"]["epochs"] == 9
  train.prepare_workdir(str(tmp_path), config)  # the first config still fits the record
  config.stages.student_kd.loss_cfg.alpha = 0.25
  with pytest.raises(UserError, match=r"different config .*'stages.student_kd'"):
    train.prepare_workdir(str(tmp_path), config)


def test_a_run_directory_moves_with_its_checkout_but_not_to_another_corpus(tmp_path):
  """A clone elsewhere resolves corpus.manual_dir to its own path: the committed results/
  run directories must still accept it; any other corpus setting must not."""
  config = tiny_quickstart()
  with config.unlocked():
    config.corpus.manual_dir = "/home/a/jaxser/../shared/data/emodb"
  train.prepare_workdir(str(tmp_path), config)
  before = (tmp_path / "config.json").read_text()
  config.corpus.manual_dir = "/tmp/clone/shared/data/emodb"
  train.prepare_workdir(str(tmp_path), config)
  assert (tmp_path / "config.json").read_text() == before  # a committed run dir stays clean
  config.corpus.seed += 1
  with pytest.raises(UserError, match=r"different config .*'corpus'"):
    train.prepare_workdir(str(tmp_path), config)


def test_checkpoints_of_another_stage_config_are_not_resumed(tmp_path):
  state = {"w": np.arange(3, dtype=np.float32)}
  ckpts = StageCheckpoints(str(tmp_path / "a"), "hash1")
  ckpts.save_latest(0, state, {"epoch": 0})
  ckpts.close()
  same = StageCheckpoints(str(tmp_path / "a"), "hash1")
  assert same.restore_latest(state)[1] == {"epoch": 0}
  same.close()
  changed = StageCheckpoints(str(tmp_path / "a"), "hash2")
  assert changed.restore_latest(state) is None
  changed.close()
  assert (tmp_path / "a" / "stage_hash").read_text() == "hash2"
  changed.save_latest(1, state, {"epoch": 1})
  changed.close()
  reader = StageCheckpoints(str(tmp_path / "a"))  # no hash: opened to read, nothing deleted
  assert reader.restore_latest(state)[1] == {"epoch": 1}
  reader.close()
  assert (tmp_path / "a" / "stage_hash").read_text() == "hash2"
  unmarked = tmp_path / "b"  # written before the marker existed: nothing tells it apart
  legacy = StageCheckpoints(str(unmarked))
  legacy.save_latest(0, state, {"epoch": 0})
  legacy.close()
  assert StageCheckpoints(str(unmarked), "hash1").restore_latest(state) is not None
  assert StageCheckpoints(str(unmarked), "hash1", discard=True).restore_latest(state) is None


def test_a_changed_stage_reruns_from_scratch_in_a_reused_run_directory(tmp_path):
  # The UserError for a changed config says: delete config.json to reuse the directory.
  # The changed stages must then train afresh, not resume their old checkpoints.
  train.run(tiny_quickstart(), str(tmp_path / "reused"))
  changed = tiny_quickstart()
  changed.train.learning_rate *= 3
  os.remove(tmp_path / "reused" / "config.json")
  train.run(changed, str(tmp_path / "reused"))
  train.run(changed, str(tmp_path / "fresh"))
  assert _report(tmp_path / "reused") == _report(tmp_path / "fresh")


def test_results_without_cache_files_or_checkpoints_train_the_teacher_again(tmp_path):
  # A fresh checkout of committed results: checkpoints are git-ignored, and a large cache
  # array may be too. With a stage still to read it (student_kd, interrupted before its
  # result), the teacher trains again (deterministically) instead of failing.
  import shutil
  workdir = tmp_path / "run"
  first = train.run(tiny_quickstart(), str(workdir))
  teacher_result = (workdir / "fold_0" / "teacher" / "result.json").read_bytes()
  os.remove(workdir / "fold_0" / "cache" / "teacher" / "logits.npy")
  for stage in ("teacher", "student_alone"):
    shutil.rmtree(workdir / "fold_0" / stage / "checkpoints")
  shutil.rmtree(workdir / "fold_0" / "student_kd")
  again = train.run(tiny_quickstart(), str(workdir))
  assert (workdir / "fold_0" / "cache" / "teacher" / "logits.npy").exists()
  assert again["summary"] == first["summary"]
  # the same test metrics: the recorded result (its history, its time) is kept as it was
  assert (workdir / "fold_0" / "teacher" / "result.json").read_bytes() == teacher_result


def test_a_teacher_trained_again_to_other_metrics_rewrites_its_result(tmp_path, capsys):
  """Where training again does not reproduce the recorded metrics, the result is rewritten
  and the run says so."""
  import shutil
  workdir = tmp_path / "run"
  config = tiny_mlps(epochs=1)
  train.run(config, str(workdir))
  path = workdir / "fold_0" / "teacher" / "result.json"
  recorded = json.loads(path.read_text())
  real_ua = recorded["test"]["ua"]
  recorded["test"]["ua"] = real_ua + 0.5  # as if the earlier run had come out otherwise
  path.write_text(json.dumps(recorded))
  shutil.rmtree(workdir / "fold_0" / "cache")
  shutil.rmtree(workdir / "fold_0" / "teacher" / "checkpoints")
  shutil.rmtree(workdir / "fold_0" / "student_kd")
  capsys.readouterr()
  train.run(config, str(workdir))
  assert "not deterministic here?); rewritten" in capsys.readouterr().out
  assert json.loads(path.read_text())["test"]["ua"] == real_ua


def test_unknown_config_key_is_one_clear_error(tmp_path):
  out = subprocess.run(
      [sys.executable, "-m", "jaxser.train", "--config", "configs/quickstart.py",
       "--config.train.no_such_key=1", "--workdir", str(tmp_path / "run")],
      env=ENV, capture_output=True, text=True, cwd=ROOT)
  assert out.returncode != 0
  assert "no_such_key" in out.stderr
  assert "Traceback" not in out.stderr
  assert not os.path.exists(tmp_path / "run")


def test_teacher_cache_roundtrip_and_staleness(tmp_path):
  path = str(tmp_path / "cache" / "teacher")
  ids = ["b", "a", "c"]
  logits = np.arange(12, dtype=np.float32).reshape(3, 4)
  teacher_cache.write(path, ids, {"logits": logits}, {"teacher": "t", "hash": "h1"}, fp16=True)
  cache = teacher_cache.read_if_fresh(path, {"teacher": "t", "hash": "h1"})
  assert cache.arrays["logits"].dtype == np.float16
  np.testing.assert_array_equal(cache.arrays["logits"][cache.rows(["a"])], logits[[1]])
  assert teacher_cache.read_if_fresh(path, {"teacher": "t", "hash": "h2"}) is None
  with pytest.raises(KeyError, match="no outputs for 1 ids"):
    cache.rows(["zz"])
  assert sorted(os.listdir(tmp_path / "cache")) == ["teacher"]  # no temporary leftovers

  # Batch by batch (what a teacher stage streams) gives the same files as all at once.
  hidden = np.random.default_rng(0).standard_normal((3, 2, 5)).astype(np.float32)
  parts = [{"logits": logits[:2], "hidden": hidden[:2]},
           {"logits": logits[2:], "hidden": hidden[2:]}]
  teacher_cache.write_batches(str(tmp_path / "streamed"), ids, iter(parts), {"teacher": "t"},
                              fp16=True)
  streamed = teacher_cache.read(str(tmp_path / "streamed"))
  assert streamed.meta["keys"] == ["hidden", "logits"]
  np.testing.assert_array_equal(streamed.arrays["logits"], cache.arrays["logits"])
  np.testing.assert_array_equal(streamed.arrays["hidden"], hidden.astype(np.float16))
  with pytest.raises(ValueError, match="2 rows for 3 ids"):
    teacher_cache.write_batches(str(tmp_path / "short"), ids, iter(parts[:1]), {})
  with pytest.raises(ValueError, match="do not fit 3 ids"):
    teacher_cache.write_batches(str(tmp_path / "long"), ids, iter(parts + parts), {})
  assert not os.path.exists(tmp_path / "short") and not os.path.exists(tmp_path / "long")


def test_large_cache_arrays_are_read_from_disk_batch_by_batch(tmp_path, monkeypatch):
  from jaxser.data import pipeline
  n = 12
  ids = np.asarray([f"u{i}" for i in range(n)])
  inputs = InputArrays(ids=ids, x=np.arange(n, dtype=np.float32)[:, None],
                       length=np.ones(n, np.int32), label=np.zeros(n, np.int32))
  rng = np.random.default_rng(0)
  order = rng.permutation(n)
  hidden = rng.standard_normal((n, 3, 5, 4)).astype(np.float32)
  path = str(tmp_path / "cache")
  teacher_cache.write(path, ids[order], {"hidden_states": hidden, "logits": hidden[:, 0, 0]},
                      {"teacher": "t"}, fp16=True)
  cache = teacher_cache.read(path)

  def batches(limit):
    monkeypatch.setattr(pipeline, "IN_MEMORY_BYTES", limit)
    pipe = Pipeline(inputs, {"t": cache})
    held = pipe._teachers["t"][1]
    assert isinstance(held["hidden_states"], np.memmap) == (limit == 0)
    return list(pipe.dataset(ids[:8], 4, train=True, seed=3, epoch=1).as_numpy_iterator()) + \
        list(pipe.dataset(ids[8:], 3, train=False).as_numpy_iterator())

  on_disk, in_memory = batches(0), batches(1 << 30)
  for d, m in zip(on_disk, in_memory):
    for key in ("hidden_states", "logits"):
      assert d["teacher"]["t"][key].dtype == np.float32
      np.testing.assert_array_equal(d["teacher"]["t"][key], m["teacher"]["t"][key])
    # Row i of the cache belongs to ids[order[i]]: the join is by id, not by position.
    want = hidden[np.argsort(order)][d["x"][:, 0].astype(int)].astype(np.float16)
    np.testing.assert_array_equal(d["teacher"]["t"]["hidden_states"], want)


def test_pipeline_joins_teacher_outputs_by_id():
  n = 10
  ids = np.asarray([f"u{i}" for i in range(n)])
  inputs = InputArrays(ids=ids, x=np.arange(n, dtype=np.float32)[:, None].repeat(3, 1),
                       length=np.full(n, 3, np.int32), label=np.arange(n, dtype=np.int32) % 4)
  # The cache holds the ids in another order; row i of the cache carries 100 + id number.
  order = np.random.default_rng(0).permutation(n)
  cache = teacher_cache.TeacherCache(ids[order], {"logits": (100.0 + order)[:, None]},
                                     {"teacher": "t"})
  pipe = Pipeline(inputs, {"t": cache})
  train_ids = [f"u{i}" for i in range(8)]
  seen = []
  for batch in pipe.dataset(train_ids, 4, train=True, seed=1, epoch=0).as_numpy_iterator():
    np.testing.assert_array_equal(batch["teacher"]["t"]["logits"][:, 0], 100.0 + batch["x"][:, 0])
    seen.extend(batch["x"][:, 0].tolist())
  assert sorted(seen) == list(range(8)) and seen != list(range(8))
  batches = list(pipe.dataset(["u1", "u2", "u3"], 2, train=False).as_numpy_iterator())
  np.testing.assert_array_equal(np.concatenate([b["mask"] for b in batches]), [1, 1, 1, 0])
  again = [b["x"][:, 0].tolist() for b in
           pipe.dataset(train_ids, 4, train=True, seed=1, epoch=0).as_numpy_iterator()]
  assert sum(again, []) == seen
  # No autotuner: dropping each epoch's iterator waited seconds for its model thread.
  for train_ in (True, False):
    assert pipe.dataset(train_ids, 4, train=train_).options().autotune.enabled is False
  # Fewer training examples than one batch: a one-line error naming the setting.
  with pytest.raises(UserError, match="only 8 training examples for batch size 16.*batch_size"):
    pipe.dataset(train_ids, 16, train=True)


def test_refit_trains_on_training_and_validation_examples(tmp_path):
  """`train.refit`: the epoch count chosen on validation, then a fresh model on train + valid."""
  from jaxser.data import folds as folds_lib
  from jaxser.data.registry import load_corpus
  config = tiny_quickstart(epochs=2)
  config.stage_order = ("teacher",)
  config.train.refit = True
  workdir = tmp_path / "run"
  train.run(config, str(workdir))
  result = io_utils.read_json(workdir / "fold_0" / "teacher" / "result.json")
  protocol = dict(config.protocol)
  name, _ = protocol.pop("name"), protocol.pop("max_folds")
  fold = folds_lib.make_folds(load_corpus(config.corpus).utterances, name, config.seed,
                              **protocol)[0]
  assert result["refit"]["epochs"] == result["best_epoch"] + 1
  assert result["refit"]["examples"] == len(fold.train) + len(fold.valid)
  # The model before the refit: the same stage's tested model when it is not refit.
  config.train.refit = False
  train.run(config, str(tmp_path / "no_refit"))
  plain = io_utils.read_json(tmp_path / "no_refit" / "fold_0" / "teacher" / "result.json")
  assert result["refit"]["selected_test"] == {m: plain["test"][m] for m in ("ua", "wa")}
  assert (workdir / "fold_0" / "teacher" / "checkpoints_refit").is_dir()


def test_the_progress_bar_counts_steps_whose_outputs_exist(monkeypatch):
  """A step counts once its outputs are computed, one step behind the newest dispatch."""
  import jax
  import tensorflow as tf
  from jaxser import trainer

  events = []
  ready = jax.block_until_ready

  def block(tree):
    events.append(("ready", int(tree["step"])))
    return ready(tree)

  class Bar:
    def __init__(self, total, **_):
      self.n, self.total = 0, total

    def update(self, n=1):
      self.n += n
      events.append(("bar", self.n))

    def close(self):
      events.append(("close", self.n))

  def train_step(state, batch):
    events.append(("dispatch", state))
    return state + 1, {"step": jax.numpy.asarray(state), "loss": jax.numpy.asarray(batch["x"]).mean()}

  monkeypatch.setattr(trainer.jax, "block_until_ready", block)
  monkeypatch.setattr(trainer, "tqdm", Bar)
  data = tf.data.Dataset.from_tensor_slices({"x": np.arange(6, dtype=np.float32)}).batch(2)
  state, m = trainer._train_epoch(0, train_step, data, 3, "test")
  assert state == 3 and m["loss"] == pytest.approx(np.mean([0.5, 2.5, 4.5]))
  assert events == [("dispatch", 0), ("dispatch", 1), ("ready", 0), ("bar", 1),
                    ("dispatch", 2), ("ready", 1), ("bar", 2), ("ready", 2), ("bar", 3),
                    ("close", 3)]
