"""Interruption and concurrency: fold locks, an unwritable or full disk, everything a run needs
checked before its first epoch, same-seed runs alike, and SIGKILL then resume."""

import errno
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from jaxser import io_utils, locks, report, train
from jaxser.errors import UserError
from tiny_config import ROOT, load_config, tiny_mlps, tiny_quickstart

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "JAX_PLATFORMS": "cpu"}


# ---------------------------------------------------------------- locks


def _hold(workdir: str, fold: str) -> subprocess.Popen:
  """Another process holding `fold`'s lock until killed."""
  code = ("import sys, time; sys.path.insert(0, %r)\nfrom jaxser import locks\n"
          "with locks.fold_locks(%r, [%r]):\n  print('held', flush=True)\n  time.sleep(600)\n"
          % (ROOT, workdir, fold))
  proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
  assert proc.stdout.readline().strip() == "held"
  return proc


def test_a_fold_in_use_is_refused_naming_the_directory_and_pid(tmp_path):
  workdir = str(tmp_path / "run")
  other = _hold(workdir, "fold_0")
  try:
    with pytest.raises(UserError) as info:
      with locks.fold_locks(workdir, ["fold_1", "fold_0"]):
        pass
    msg = str(info.value)
    assert msg.startswith(f"--workdir {workdir}: fold_0 is in use by pid {other.pid} on ")
    assert "\n" not in msg and "other --folds" in msg
    assert not os.path.exists(os.path.join(workdir, "fold_1", locks.LOCK_FILE))  # all or none
    # Disjoint folds (scripts/run_folds.sh) share the directory.
    with locks.fold_locks(workdir, ["fold_1"]):
      assert os.path.exists(os.path.join(workdir, "fold_1", locks.LOCK_FILE))
    assert not os.path.exists(os.path.join(workdir, "fold_1", locks.LOCK_FILE))  # clean exit
  finally:
    other.kill()  # SIGKILL: the kernel drops its lock, the file stays behind
    other.wait()
  assert os.path.exists(os.path.join(workdir, "fold_0", locks.LOCK_FILE))
  with locks.fold_locks(workdir, ["fold_0"]):
    pass


def test_train_refuses_a_fold_another_process_runs(tmp_path):
  workdir = str(tmp_path / "run")
  config = tiny_mlps(epochs=1)
  with locks.fold_locks(workdir, ["fold_0"]):  # a second open file: the run cannot lock it
    with pytest.raises(UserError, match=f"--workdir {workdir}: fold_0 is in use by pid "
                                        f"{os.getpid()}"):
      train.run(config, workdir)
  assert os.listdir(os.path.join(workdir, "fold_0")) == []  # nothing trained; lock file gone


# ---------------------------------------------------------------- the disk

_UNWRITABLE = """
import sys
sys.path.insert(0, {tests!r})
from jaxser import train
from jaxser.errors import UserError
from tiny_config import tiny_mlps
for workdir in sys.argv[1:]:
  try:
    train.run(tiny_mlps(), workdir)
    print("no error")
  except UserError as e:
    print(e)
"""


def test_an_unwritable_workdir_fails_before_anything_runs(tmp_path):
  """chmod binds root only without CAP_DAC_OVERRIDE: as root, the run goes through capsh."""
  (tmp_path / "ro" / "run").mkdir(parents=True)
  script = tmp_path / "unwritable.py"
  script.write_text(_UNWRITABLE.format(tests=os.path.join(ROOT, "tests")))
  dirs = [str(tmp_path / "ro" / "run"), str(tmp_path / "ro" / "new")]
  command = [sys.executable, str(script), *dirs]
  if os.geteuid() == 0:
    import shlex
    import shutil
    if not shutil.which("capsh"):
      pytest.skip("running as root without capsh: chmod does not stop root from writing")
    command = ["capsh", "--drop=cap_dac_override,cap_dac_read_search,cap_fowner", "--", "-c",
               shlex.join(command)]
  os.chmod(tmp_path / "ro" / "run", 0o555)
  os.chmod(tmp_path / "ro", 0o555)
  try:
    out = subprocess.run(command, capture_output=True, text=True, env=ENV, cwd=ROOT)
  finally:
    os.chmod(tmp_path / "ro", 0o755)
    os.chmod(tmp_path / "ro" / "run", 0o755)
  if os.geteuid() == 0 and "capsh" in out.stderr and out.returncode:
    pytest.skip(f"capsh could not drop root's capabilities: {out.stderr.strip()[-200:]}")
  assert out.stdout.splitlines() == [
      f"--workdir {dirs[0]} cannot be written: Permission denied; choose another, or fix its "
      "permissions or free space",
      f"--workdir {dirs[1]} cannot be created (Permission denied); choose another --workdir or "
      "fix the permissions of its parent"], out.stderr[-2000:]
  assert os.listdir(dirs[0]) == []


def test_a_workdir_that_cannot_be_written_is_found_when_prepared(tmp_path, monkeypatch):
  """The same check as above, for any user: the probe write fails (here: made to)."""
  def refused(*a, **k):
    raise PermissionError(errno.EACCES, "Permission denied")

  monkeypatch.setattr(io_utils.tempfile, "mkstemp", refused)
  with pytest.raises(UserError, match=f"--workdir {tmp_path / 'run'} cannot be written: "
                                      "Permission denied"):
    train.run(tiny_mlps(), str(tmp_path / "run"))
  assert os.listdir(tmp_path / "run") == []


def test_atomic_writes_get_the_umask_permissions_not_owner_only(tmp_path):
  # A run dir shared with a group (reports, results, caches, exported models) must be as
  # readable as a plain open() / mkdir makes it; tempfile's temporaries are 0600 / 0700.
  old = os.umask(0o022)
  try:
    io_utils.write_json(str(tmp_path / "result.json"), {"ua": 1.0})
    with io_utils.atomic_dir(str(tmp_path / "cache")) as tmp:
      io_utils.write_text(os.path.join(tmp, "meta.json"), "{}")
  finally:
    os.umask(old)
  assert os.stat(tmp_path / "result.json").st_mode & 0o777 == 0o644
  assert os.stat(tmp_path / "cache").st_mode & 0o777 == 0o755
  assert os.stat(tmp_path / "cache" / "meta.json").st_mode & 0o777 == 0o644
  assert sorted(os.listdir(tmp_path)) == ["cache", "result.json"]


def test_atomic_dir_keeps_the_old_contents_when_the_final_rename_fails(tmp_path, monkeypatch):
  path = str(tmp_path / "cache")
  with io_utils.atomic_dir(path) as tmp:
    io_utils.write_text(os.path.join(tmp, "v"), "1")
  real_replace = os.replace

  def replace(src, dst):
    if dst == path and src.endswith(".tmp"):  # the new contents' rename, not the restore
      raise OSError(errno.EXDEV, "cross-device link")
    real_replace(src, dst)
  monkeypatch.setattr(os, "replace", replace)
  with pytest.raises(OSError, match="cross-device"):
    with io_utils.atomic_dir(path) as tmp:
      io_utils.write_text(os.path.join(tmp, "v"), "2")
  monkeypatch.undo()
  assert open(os.path.join(path, "v")).read() == "1"
  assert os.listdir(tmp_path) == ["cache"]


def test_a_full_disk_names_the_path_being_written(tmp_path, monkeypatch):
  path = str(tmp_path / "run" / "report.json")
  if os.path.exists("/dev/full"):  # a real ENOSPC from the kernel
    with pytest.raises(UserError, match=rf"no space left on the disk of {path} while writing it "
                                        r"\(\d+ MB free\): \[Errno 28\]"):
      with io_utils.atomic_path(path), open("/dev/full", "wb", buffering=0) as f:
        f.write(b"{}")
  assert not os.listdir(tmp_path / "run")  # no temporary file left

  # Inside a library (Orbax), the full disk arrives wrapped in another exception.
  from jaxser.checkpoints import StageCheckpoints
  import orbax.checkpoint as ocp
  ckpts = StageCheckpoints(str(tmp_path / "ckpt"), "h")

  def full(self, *a, **k):
    try:
      raise OSError(errno.ENOSPC, "No space left on device")
    except OSError as e:
      raise ValueError("save failed") from e

  monkeypatch.setattr(ocp.CheckpointManager, "save", full)
  with pytest.raises(UserError, match=rf"disk of {tmp_path / 'ckpt' / 'latest'} "):
    ckpts.save_latest(1, {"w": 1.0}, {"epoch": 0})
  ckpts.close()

  # The teacher cache reserves its files first: a full disk fails there, named.
  from jaxser.data import teacher_cache
  monkeypatch.setattr(teacher_cache.os, "posix_fallocate",
                      lambda fd, o, n: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")),
                      raising=False)
  import numpy as np
  cache = str(tmp_path / "cache" / "teacher")
  with pytest.raises(UserError, match=f"disk of {cache} "):
    teacher_cache.write(cache, ["a", "b"], {"logits": np.ones((2, 3), np.float32)}, {})
  assert os.listdir(tmp_path / "cache") == []


# ---------------------------------------------------------------- checked before the first epoch


def _noise_dir(tmp_path):
  import numpy as np
  import soundfile as sf
  d = tmp_path / "noise"
  d.mkdir()
  sf.write(d / "Factory1.wav", 0.1 * np.random.default_rng(0).standard_normal(16000), 16000)
  return str(d)


LATE = {  # what used to fail only when its stage started -> (edit of tiny_quickstart, message)
    "eval_noise dir": (lambda c, d: c.update(dict(eval_noise=dict(
        types=("white",), snr_db=(0.0,), dir=d + "_missing"))),
                       r"config.eval_noise.dir: noise directory .*noise_missing does not exist"),
    "eval_noise type": (lambda c, d: c.update(dict(eval_noise=dict(
        types=("factory1", "cafe"), snr_db=(0.0,), dir=d))),
                        r"config.eval_noise.types \['cafe'\] are unknown; on offer: \['babble', "
                        r"'brown', 'factory1', 'pink', 'white'\]"),
    "stage noise dir": (lambda c, d: c.stages.student_kd.update(dict(noise=dict(
        types=("white",), snr_db=(0.0,), dir="/nowhere"))),
                        r"config.stages.student_kd.noise.dir: noise directory /nowhere"),
    "stage noise snr": (lambda c, d: c.stages.student_kd.update(dict(noise=dict(
        types=("white",), snr_db=()))), r"student_kd.noise.snr_db is empty"),
    "noise on features": (lambda c, d: c.stages.teacher.update(dict(noise=dict(
        types=("white",), snr_db=(0.0,)))), r"teacher.noise adds noise to waveforms"),
    "spec_augment on waveforms": (lambda c, d: c.stages.student_kd.update(dict(spec_augment=dict(
        freq_masks=1))), r"student_kd.spec_augment masks \[frames, features\] inputs"),
    "noise with spec_augment": (lambda c, d: c.stages.student_kd.update(dict(
        noise=dict(types=("white",), snr_db=(0.0,)), spec_augment=dict(freq_masks=1))),
                                r"student_kd: `noise` \(waveforms\) and `spec_augment` "
                                r"\(features\) cannot both"),
    "modality_mask with noise": (lambda c, d: c.stages.student_kd.update(dict(
        noise=dict(types=("white",), snr_db=(0.0,)), modality_mask=dict(p_none=1.0))),
                                 r"student_kd: `modality_mask` \(dialogue streams\) and `noise` "
                                 r"cannot both"),
    "optimizer": (lambda c, d: c.stages.student_kd.train.update(dict(optimizer="adagrad")),
                  r"config.stages.student_kd: config.train.optimizer='adagrad' is unknown"),
    "select": (lambda c, d: c.stages.student_kd.train.update(dict(select="UA")),
               r"config.stages.student_kd: config.train.select='UA' is unknown"),
    "early stopping monitor": (lambda c, d: c.stages.student_kd.train.update(dict(
        early_stopping=dict(patience=2, monitor="f1"))),
                               r"config.train.early_stopping.monitor='f1' is unknown; choose one "
                               r"of \('loss', 'ua', 'wa', 'macro_precision', 'macro_f1', "
                               r"'weighted_f1'\)"),
    "early stopping on select last": (lambda c, d: (
        setattr(c.train, "early_stopping", dict(patience=2)),  # no monitor: it follows select
        c.stages.student_kd.train.update(dict(select="last"))),
                                      r"config.train.early_stopping watches `select` unless it "
                                      r"names a monitor, and select='last'"),
    "model setting": (lambda c, d: c.stages.student_kd.model.update(dict(widht=3)),
                      r"config.stages.student_kd: model 'litecnn' has no settings \['widht'\]"),
    "input kind": (lambda c, d: c.stages.student_kd.input.update(dict(kind="mfcc")),
                   r"student_kd.input.kind='mfcc' is unknown"),
    "init_from model": (lambda c, d: c.stages.student_kd.update(dict(init_from=dict(
        stage="student_alone", layers=(1,)))),
                        r"student_kd.init_from: model 'litecnn' cannot start from a teacher"),
    "checkpoint": (lambda c, d: setattr(c.stages.student_kd, "model", dict(
        name="w2v2_classifier", checkpoint=d + "/no_model")),
                   r"student_kd.model.checkpoint: '.*no_model' is not a directory and not a "
                   r"model in the local Hugging Face cache"),
    "KD teacher": (lambda c, d: c.stages.student_kd.loss_cfg.update(dict(teacher="student_alone")),
                   r"loss_cfg.teacher='student_alone' is not one of config.stages.student_kd."
                   r"teachers \('teacher',\)"),
}


@pytest.mark.parametrize("case", sorted(LATE))
def test_a_late_stage_setting_fails_before_the_first_stage_trains(tmp_path, case):
  edit, message = LATE[case]
  config = tiny_quickstart(epochs=1)
  with config.unlocked():
    edit(config, _noise_dir(tmp_path))
  workdir = tmp_path / "run"
  with pytest.raises(UserError, match=message):
    train.run(config, str(workdir))
  assert not os.path.exists(workdir / "fold_0"), os.listdir(workdir)


def _mlkd_experiment(tmp_path, config):
  import importlib
  from jaxser import experiment, sharding
  from jaxser.data import synthetic
  config.corpus = dict(name="synthetic", seed=0, num_speakers=2, utterances_per_speaker=2)
  return experiment.Experiment(config, synthetic.build(config.corpus),
                               importlib.import_module("jaxser.methods.mlkd"),
                               sharding.make_mesh(), str(tmp_path))


def test_init_from_layers_are_checked_against_both_encoders(tmp_path):
  """(MLKD's students start from the teacher's even layers; the student has 2.)"""
  c = load_config("mlkd_emodb")
  c.stages.mlkd.init_from.layers = (2, 4)
  with pytest.raises(UserError, match=r"config.stages.\w+.init_from.layers=\(2, 4\): 2 "
                                      r"teacher layers for a student of 3 layers"):
    _mlkd_experiment(tmp_path, c)
  c = load_config("mlkd_emodb")
  c.stages.mlkd.init_from.layers = (2, 4, 99)
  with pytest.raises(UserError, match=r"layers=\(2, 4, 99\): teacher 'teacher' has layers 1-\d+$"):
    _mlkd_experiment(tmp_path, c)


def test_a_cache_without_the_weights_a_later_stage_starts_from_is_not_ready(tmp_path):
  """A teacher cache written when only outputs were asked for would, before, pass as done and
  fail when the `init_from` stage started; now the teacher's cache is rebuilt first."""
  import numpy as np
  from jaxser.data import teacher_cache
  runner = _mlkd_experiment(tmp_path, load_config("mlkd_emodb"))
  path, meta = str(tmp_path / "cache"), {"teacher": "teacher", "hash": "h"}
  teacher_cache.write(path, ["a"], {"logits": np.zeros((1, 7), np.float32)}, meta)
  assert not runner._cache_ready("teacher", path, meta)
  teacher_cache.write(path, ["a"], {"logits": np.zeros((1, 7), np.float32)}, meta,
                      params={"w": np.ones(2)})
  assert runner._cache_ready("teacher", path, meta)


def test_a_best_checkpoint_saved_again_for_its_step_is_kept(tmp_path):
  """A run killed between the best and the latest save of an epoch repeats the epoch on resume
  and saves the best again at the same step, which Orbax refuses to overwrite."""
  import numpy as np
  from jaxser.checkpoints import StageCheckpoints
  ckpts = StageCheckpoints(str(tmp_path / "ckpt"), "h")
  ckpts.save_best(5, {"w": np.ones(2)}, {"epoch": 0})
  ckpts.close()
  ckpts = StageCheckpoints(str(tmp_path / "ckpt"), "h")  # the resumed run
  ckpts.save_best(5, {"w": np.ones(2)}, {"epoch": 0})
  ckpts.save_latest(5, {"w": np.ones(2)}, {"epoch": 0})
  state, meta = ckpts.restore_best({"w": np.zeros(2)})
  np.testing.assert_array_equal(state["w"], np.ones(2))
  ckpts.close()


# ---------------------------------------------------------------- determinism


def test_two_runs_with_the_same_seed_give_identical_reports(tmp_path):
  config = tiny_mlps(epochs=2)
  config.report.latency_repeats = 2  # the efficiency table too (its timings aside)
  a = train.run(config, str(tmp_path / "a"))
  b = train.run(config, str(tmp_path / "b"))
  assert report.without_timing(a) == report.without_timing(b)
  assert a["summary"]["teacher"]["ua"] and a["efficiency"]["teacher"]["params"]
  for stage in config.stage_order:
    results = [json.load(open(tmp_path / r / "fold_0" / stage / "result.json")) for r in "ab"]
    assert report.without_timing(results[0]) == report.without_timing(results[1]), stage


# ---------------------------------------------------------------- SIGKILL


def _kill_resume():
  spec = importlib.util.spec_from_file_location(
      "kill_resume", os.path.join(ROOT, "scripts", "kill_resume.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.slow
def test_sigkill_while_the_teacher_cache_is_written_then_resume(tmp_path):
  """scripts/kill_resume.py's trial, once: a run killed half-way through writing the teacher
  cache, run again, ends with the uninterrupted run's report."""
  kr = _kill_resume()
  config = str(tmp_path / "tiny.py")
  with open(config, "w") as f:
    f.write(kr.CONFIG.format(epochs=1, tests=os.path.join(ROOT, "tests")))
  assert kr._train(config, str(tmp_path / "ref"), str(tmp_path / "ref.log")) == 0
  result = kr.trial(config, str(tmp_path / "killed"), "teacher_cache",
                    kr._report(str(tmp_path / "ref")))
  assert result["ok"], (result, open(tmp_path / "killed.log").read()[-3000:])
  assert result["killed_rc"] == -9 and "one batch written" in result["where"]
  assert result["tmp_after_resume"] == []
