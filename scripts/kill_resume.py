"""SIGKILL trials: a tiny quickstart run is killed at a chosen moment, the same command is run
again, and its report.json must equal an uninterrupted run's (timing fields aside).

    python scripts/kill_resume.py [--trials 5] [--workdir /tmp/kill_resume] [--epochs 2]

One uninterrupted run gives the reference; trial k then kills a run at MOMENTS[k % 5]:

  teacher_train   the teacher mid-way through its second epoch (one checkpoint written)
  teacher_cache   the teacher cache half written (its first batch in the temporary folder)
  between_saves   student_alone's best checkpoint of its first epoch saved, the latest not yet
  student_train   student_kd mid-way through its second epoch
  report          report.json in place, report.md not yet written

The killed run is this script in `child` mode: it runs `jaxser.train` with one jaxser function
wrapped so that, at the moment, it writes a marker file and waits; the parent then sends it
SIGKILL, as a crash, the OOM killer or a pre-empted machine would. jaxser itself has no hook.
The re-run is the plain `python -m jaxser.train` command. Each trial also lists the temporary
files the killed run left behind, and those the re-run did not clean up.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MOMENTS = ("teacher_train", "teacher_cache", "between_saves", "student_train", "report")
TIMEOUT_S = 600
CONFIG = '''"""tests/tiny_config.py's tiny quickstart, {epochs} epochs (by kill_resume.py)."""
import sys
sys.path.insert(0, {tests!r})
from tiny_config import tiny_quickstart


def get_config():
  return tiny_quickstart(epochs={epochs})
'''


# ---------------------------------------------------------------- the killed run (child mode)


def _pause(marker: str, what: str):
  """Marks the moment reached and waits for the parent's SIGKILL."""
  with open(marker + ".tmp", "w") as f:
    f.write(what)
  os.replace(marker + ".tmp", marker)
  while True:
    time.sleep(60)


def _install(moment: str, marker: str):
  """Wraps the jaxser function where `moment` happens so that it pauses there."""
  from jaxser import io_utils, trainer
  from jaxser.checkpoints import StageCheckpoints
  from jaxser.data import teacher_cache

  if moment in ("teacher_train", "student_train"):
    stage = {"teacher_train": "teacher", "student_train": "student_kd"}[moment]
    fit = trainer.fit

    def paused_fit(**kw):
      if kw["desc"].split(" ", 1)[1] == stage:
        step, at = kw["train_step"], kw["steps_per_epoch"] + max(kw["steps_per_epoch"] // 2, 1)
        count = {"n": 0}

        def counted(state, batch):
          count["n"] += 1
          if count["n"] == at:
            _pause(marker, f"{kw['desc']}: train step {at}, epoch 2")
          return step(state, batch)

        kw["train_step"] = counted
      return fit(**kw)

    trainer.fit = paused_fit
  elif moment == "teacher_cache":
    write = teacher_cache.write_batches

    def paused_write(path, ids, batches, meta, *args, **kwargs):
      def halfway():
        for i, batch in enumerate(batches):
          if i == 1:
            _pause(marker, f"{path}: one batch written")
          yield batch
        _pause(marker, f"{path}: every batch written, meta.json not yet")
      return write(path, ids, halfway(), meta, *args, **kwargs)

    teacher_cache.write_batches = paused_write
  elif moment == "between_saves":
    save_best = StageCheckpoints.save_best

    def paused_save_best(self, step, state, meta):
      save_best(self, step, state, meta)
      if f"{os.sep}student_alone{os.sep}" in self.directory + os.sep:
        _pause(marker, f"{self.directory}: best of epoch {meta['epoch'] + 1} saved, latest not")

    StageCheckpoints.save_best = paused_save_best
  elif moment == "report":
    write_text = io_utils.write_text

    def paused_write_text(path, text):
      if os.path.basename(path) == "report.md":
        _pause(marker, "report.json written, report.md not yet")
      write_text(path, text)

    io_utils.write_text = paused_write_text
  else:
    raise SystemExit(f"unknown moment {moment!r}; choose one of {MOMENTS}")


def child(argv):
  """`child MOMENT MARKER -- <jaxser.train arguments>`: jaxser.train, pausing at MOMENT."""
  moment, marker, sep, *train_args = argv
  assert sep == "--", argv
  from absl import app

  from jaxser import train
  _install(moment, marker)
  app.run(train.main, argv=["jaxser.train", *train_args], flags_parser=train._parse_flags)


# ---------------------------------------------------------------- the trials (parent)


def _env():
  return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "JAX_PLATFORMS": "cpu",
          "PYTHONUNBUFFERED": "1"}


def _train(config: str, workdir: str, log: str) -> int:
  with open(log, "a") as out:
    return subprocess.run([sys.executable, "-m", "jaxser.train", "--config", config,
                           "--workdir", workdir], env=_env(), cwd=ROOT, stdout=out,
                          stderr=subprocess.STDOUT, timeout=TIMEOUT_S).returncode


def _report(workdir: str) -> dict:
  from jaxser import report
  with open(os.path.join(workdir, "report.json")) as f:
    return report.without_timing(json.load(f))


def _differences(a, b, where="") -> list[str]:
  if isinstance(a, dict) and isinstance(b, dict):
    return [d for k in sorted(set(a) | set(b))
            for d in _differences(a.get(k), b.get(k), f"{where}.{k}")]
  return [] if a == b else [where or "."]


def _leftovers(workdir: str) -> list[str]:
  """Temporary files and folders under `workdir` (io_utils' `*.tmp`, Orbax's
  `*.orbax-checkpoint-tmp*`), relative to it."""
  found = []
  for root, dirs, files in os.walk(workdir):
    found += [os.path.relpath(os.path.join(root, n), workdir) for n in dirs + files
              if n.endswith(".tmp") or ".tmp." in n or "orbax-checkpoint-tmp" in n]
  return sorted(found)


def trial(config: str, workdir: str, moment: str, reference: dict) -> dict:
  """Kills a run of `config` in `workdir` at `moment`, re-runs it and compares its report."""
  os.makedirs(workdir, exist_ok=True)
  marker, log = os.path.join(workdir + ".marker"), workdir + ".log"
  for f in (marker,):
    if os.path.exists(f):
      os.remove(f)
  start = time.time()
  with open(log, "w") as out:
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "child", moment, marker,
                             "--", "--config", config, "--workdir", workdir],
                            env=_env(), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
  while not os.path.exists(marker) and proc.poll() is None and time.time() - start < TIMEOUT_S:
    time.sleep(0.05)
  if not os.path.exists(marker):
    proc.kill()
    proc.wait()
    return {"moment": moment, "ok": False, "why": f"never reached the moment (see {log})"}
  os.kill(proc.pid, signal.SIGKILL)
  proc.wait()
  killed_at = round(time.time() - start, 1)
  with open(marker) as f:
    where = f.read()
  left_by_kill = _leftovers(workdir)
  rc = _train(config, workdir, log)
  out = {"moment": moment, "killed_after_s": killed_at, "where": where,
         "killed_rc": proc.returncode, "resume_rc": rc,
         "tmp_after_kill": left_by_kill, "tmp_after_resume": _leftovers(workdir)}
  if rc != 0:
    return {**out, "ok": False, "why": f"the re-run failed (exit {rc}; see {log})"}
  diff = _differences(reference, _report(workdir))
  return {**out, "ok": not diff, "differences": diff}


def main(argv=None) -> int:
  if argv is None:
    argv = sys.argv[1:]
  if argv[:1] == ["child"]:
    child(argv[1:])
    return 0
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--trials", type=int, default=5)
  p.add_argument("--moments", default=",".join(MOMENTS),
                 help=f"comma-separated, from {MOMENTS}; trials cycle through them")
  p.add_argument("--workdir", default="/tmp/kill_resume")
  p.add_argument("--epochs", type=int, default=2)
  args = p.parse_args(argv)
  moments = args.moments.split(",")
  os.makedirs(args.workdir, exist_ok=True)
  config = os.path.join(args.workdir, "tiny_quickstart.py")
  with open(config, "w") as f:
    f.write(CONFIG.format(epochs=args.epochs, tests=os.path.join(ROOT, "tests")))
  ref_dir = os.path.join(args.workdir, "reference")
  start = time.time()
  rc = _train(config, ref_dir, ref_dir + ".log")
  if rc != 0:
    print(f"the uninterrupted run failed (exit {rc}); see {ref_dir}.log")
    return 1
  print(f"reference: uninterrupted run in {time.time() - start:.0f} s ({ref_dir})")
  reference = _report(ref_dir)
  failed = 0
  for k in range(args.trials):
    r = trial(config, os.path.join(args.workdir, f"trial_{k}"), moments[k % len(moments)],
              reference)
    failed += not r["ok"]
    verdict = ("report.json identical to the reference (timing fields aside)" if r["ok"]
               else r.get("why") or f"reports differ at {r['differences'][:8]}")
    print(f"trial {k} {r['moment']}: SIGKILL after {r.get('killed_after_s', '-')} s at "
          f"[{r.get('where', '-')}]; re-run exit {r.get('resume_rc', '-')}; {verdict}")
    if r.get("tmp_after_kill") or r.get("tmp_after_resume"):
      print(f"  temporary files after the kill: {r.get('tmp_after_kill')}; after the re-run: "
            f"{r.get('tmp_after_resume')}")
  print(f"{args.trials - failed} of {args.trials} trials passed")
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
