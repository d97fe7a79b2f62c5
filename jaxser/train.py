"""Runs an experiment: for every fold, each stage of the config in order, then the report.

    python -m jaxser.train --config configs/quickstart.py [--config.train.epochs=5] [--workdir runs/x]

A stage trains one model (a teacher or a student) on the fold's training ids,
keeps its best checkpoint by validation score, evaluates it on the fold's test
ids and, when a later stage distils from it, writes its outputs for every id
of the fold to the teacher cache. Re-running the same command resumes: finished
stages are skipped, an interrupted one continues from its latest checkpoint.

Everything a run needs is checked before the first epoch: the config (every stage's
model, input, optimizer, noise folders), the run directory (writable; no other process on
the same folds: see jaxser.locks) and the corpus (an unusable audio file stops the run,
naming it, unless --skip_bad_files leaves such files out).

The same command runs on several processes (one per host, or several on one machine)
with --coordinator_address, --num_processes and --process_id (or --distributed alone
on a TPU pod or under SLURM); every process needs the same --workdir on a shared disk.
"""

from __future__ import annotations

import importlib
import os
import sys
import time

# TensorFlow (tf.data only) prints oneDNN and absl start-up lines unless told before import.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None,
    "Experiment config file, e.g. configs/quickstart.py. Any setting can be overridden with "
    "--config.<path>=<value>, e.g. --config.train.epochs=5 --config.stages.student_kd."
    "loss_cfg.temperature=4.", lock_config=True)
_FOLDS = flags.DEFINE_string(
    "folds", None, "Run only these folds (indices, e.g. '3,4' or '3-9'); their report, "
    "report.folds_3-9.{json,md}, covers them. Several independent runs (no "
    "--coordinator_address) may share one --workdir with different --folds (e.g. one per "
    "accelerator or core); a last run without --folds finds every fold done and reports all.")
_REPORT_ONLY = flags.DEFINE_bool(
    "report_only", False, "Train nothing: write the report of the folds (of --folds, or all) "
    "whose every stage has a result in --workdir, e.g. to read a long run while it goes (no "
    "fold locks are taken). Folds with stages still to run are named and left out; the "
    "report is report.folds_<finished>.{json,md} until every fold is done. Add "
    "--config.report.latency_repeats=0 to skip timing the models while a run shares the cores.")
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Run directory: resolved config, TensorBoard logs, per-fold checkpoints "
    "and teacher caches, report.{json,md} (config.report.file names them). Default: "
    "runs/<config.name>. Re-using it resumes.")
_SKIP_BAD_FILES = flags.DEFINE_bool(
    "skip_bad_files", False, "Leave out the corpus's unusable audio files (empty, unreadable, "
    "cut short, NaN samples, silent, too short), naming each and counting them in the report. "
    "Without it such a file stops the run before training, named in the error.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "Several processes as one run (jax.distributed): host:port "
    "of process 0, which every process connects to, e.g. localhost:12355 on one machine or "
    "<host 0>:12355 on a cluster. Give with --num_processes and --process_id, the same "
    "command and --workdir (on a shared disk) in every process. Each process feeds its own "
    "devices' rows of every global batch; the batch sizes must divide the global device "
    "count. Only process 0 writes results, reports and logs.")
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", None, "Number of processes of a --coordinator_address run (e.g. one per "
    "host, or 2 on one machine, each with its fake CPU devices from XLA_FLAGS="
    "--xla_force_host_platform_device_count=N; CPU processes talk over gloo).")
_PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "This process's index in a --coordinator_address run, 0 to "
    "--num_processes - 1; process 0 runs the coordinator and writes the files.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Start jax.distributed and let it detect the coordinator, the "
    "number of processes and this process's id (TPU pods, SLURM, Open MPI); any of "
    "--coordinator_address, --num_processes, --process_id given overrides its guess.")


# Settings that change no stage's result, so runs sharing a directory may differ in them.
_FREE_SETTINGS = {"stage_order", "report", "name"}


def prepare_workdir(workdir: str, config, make_parents: bool = False) -> None:
  """Creates `workdir` and records the config in its config.json (on process 0; every process
  checks it); refuses to mix two configs in one run dir.

  Only settings that change no stage's result may differ: `stage_order`, `report`,
  `name`, `corpus.manual_dir` (`config_utils.LOCATIONS`; the corpus is compared by
  `check_corpus`), and which stages `stages` defines (a stage both define must be the same).
  Results are kept per stage (and checked by stage hash), so a run may train some stages
  first and the rest later, a config's variants (stage subsets with their own report, e.g. an
  ablation and a sweep) may share one directory and its teachers, and a config may gain
  stages. The record keeps its first free settings and gains later runs' new stages (in
  `stages`, and at the end of `stage_order`).
  """
  from jaxser import distributed, io_utils
  from jaxser.config_utils import to_dict, without_locations
  from jaxser.errors import UserError
  parent = os.path.dirname(os.path.abspath(workdir))
  try:
    if make_parents:  # the default runs/<name>: nothing the user typed can be mistyped
      os.makedirs(parent, exist_ok=True)
    if not os.path.isdir(parent):
      raise UserError(f"--workdir {workdir}: parent directory {parent} does not exist; "
                      "create it first or choose another --workdir")
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise UserError(f"--workdir {workdir} cannot be created ({e.strerror}); choose another "
                    "--workdir or fix the permissions of its parent") from e
  io_utils.check_writable(workdir, "--workdir")
  path = os.path.join(workdir, "config.json")
  resolved = to_dict(config)
  if os.path.exists(path):
    recorded = io_utils.read_json(path)
    previous, current = without_locations(recorded), without_locations(resolved)
    changed = sorted(k for k in (set(previous) | set(current)) - _FREE_SETTINGS - {"stages"}
                     if previous.get(k) != current.get(k))
    old_stages, new_stages = previous.get("stages", {}), current.get("stages", {})
    changed += sorted(f"stages.{s}" for s in set(old_stages) & set(new_stages)
                      if old_stages[s] != new_stages[s])
    if changed:
      raise UserError(f"--workdir {workdir} holds a run with a different config (settings that "
                       f"differ: {changed}); use a new --workdir, or delete {path} to reuse it")
    # The record stays as first written (a committed run dir stays clean when run from another
    # clone or as another variant); it only gains the stages this run adds.
    order = list(recorded["stage_order"])
    added = [s for s in resolved["stage_order"] if s not in order]
    defined = {s: resolved["stages"][s] for s in resolved.get("stages", {})
               if s not in recorded.get("stages", {})}
    if not added and not defined:
      return
    resolved = {**recorded, "stage_order": order + added,
                "stages": {**recorded.get("stages", {}), **defined}}
  if distributed.is_main():
    io_utils.write_json(path, resolved)


def check_corpus(workdir: str, corpus) -> None:
  """Records the corpus's utterance list (on process 0; every process checks it); refuses a
  run directory made over another one."""
  from jaxser import distributed, io_utils
  from jaxser.config_utils import config_hash
  from jaxser.errors import UserError
  info = {"name": corpus.name, "utterances": len(corpus.utterances),
          "fingerprint": config_hash(sorted((u.id, u.speaker, u.label)
                                            for u in corpus.utterances)),
          "skipped": dict(corpus.skipped)}
  path = os.path.join(workdir, "corpus.json")
  if os.path.exists(path):
    previous = io_utils.read_json(path)
    if previous["fingerprint"] != info["fingerprint"]:
      raise UserError(
          f"--workdir {workdir} was run over another version of corpus {corpus.name!r} "
          f"({previous['utterances']} utterances, skipped {previous['skipped']}; now "
          f"{info['utterances']}, skipped {info['skipped']}); fix the corpus or use a new "
          "--workdir")
  if not distributed.is_main():
    return
  io_utils.write_json(path, info)
  if corpus.skipped:
    print(f"{corpus.name}: skipped {sum(corpus.skipped.values())} utterances "
          f"({', '.join(f'{k}: {v}' for k, v in corpus.skipped.items())}); the report lists them",
          file=sys.stderr)


def parse_folds(spec: str | None, num_folds: int) -> list[int] | None:
  """Fold indices of a --folds value ('3,4', '3-9', '0,2-4'); None runs every fold."""
  from jaxser.errors import UserError
  if not spec:
    return None
  picked = set()
  for part in spec.split(","):
    lo, _, hi = part.strip().partition("-")
    try:
      lo_i, hi_i = int(lo), int(hi or lo)
    except ValueError:
      raise UserError(f"--folds={spec}: {part!r} is not an index or a range like 3-9") from None
    picked.update(range(lo_i, hi_i + 1))
  bad = sorted(k for k in picked if not 0 <= k < num_folds)
  if bad:
    raise UserError(f"--folds={spec}: folds {bad} do not exist; this config has {num_folds} "
                    f"folds, 0-{num_folds - 1}")
  return sorted(picked)


def folds_label(indices) -> str:
  """Fold indices as a file-name part: [0, 1, 2, 5] -> '0-2_5'."""
  runs = []
  for k in sorted(indices):
    if runs and k == runs[-1][1] + 1:
      runs[-1][1] = k
    else:
      runs.append([k, k])
  return "_".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def run(config, workdir: str, folds_to_run: str | None = None,
        make_parents: bool = False, skip_bad_files: bool = False,
        report_only: bool = False) -> dict | None:
  """Runs every fold (or those of `folds_to_run`, a --folds value) and stage of `config`
  under `workdir` (its parents made when `make_parents`) and writes the report; returns it
  (None on processes other than 0, which write nothing). `skip_bad_files` leaves out the
  corpus's unusable audio files instead of stopping on them. `report_only` trains nothing
  and reports the folds whose stages all have results (`finished_folds`)."""
  from jaxser import distributed, experiment, inference, locks, profile, report, sharding
  from jaxser.data import folds as folds_lib
  from jaxser.data.registry import load_corpus
  from jaxser.errors import UserError

  report.compare_pairs(config)  # a bad report setting fails now, not after training
  if report_only and not os.path.exists(os.path.join(workdir, "config.json")):
    raise UserError(f"--report_only: --workdir {workdir} holds no run (no config.json); "
                    "check --workdir, or run without --report_only first")
  prepare_workdir(workdir, config, make_parents)
  start = time.time()
  mesh = sharding.make_mesh()
  corpus = load_corpus(config.corpus, skip_bad_files=skip_bad_files)
  check_corpus(workdir, corpus)
  folds = folds_lib.from_config(config.protocol, corpus.utterances, config.seed)
  picked = parse_folds(folds_to_run, len(folds))
  method = importlib.import_module(f"jaxser.methods.{config.method}")
  runner = experiment.Experiment(config, corpus, method, mesh, workdir)  # checks every stage
  mine = {k: f for k, f in enumerate(folds) if picked is None or k in picked}
  # Process 0 alone locks: the others of a multi-process run work on the same folds with it.
  # A report-only run writes nothing in the fold directories: it leaves them to their runs.
  with locks.fold_locks(workdir, [f.name for f in mine.values()],
                        enabled=distributed.is_main() and not report_only):
    if report_only:
      results = finished_folds(runner, config.stage_order, mine, workdir)
      mine = {k: f for k, f in mine.items() if f.name in results}
    else:
      results = {fold.name: {stage: runner.run_stage(stage, fold, k)
                             for stage in config.stage_order} for k, fold in mine.items()}
    seconds = time.time() - start
    if not distributed.is_main():  # process 0 measures and writes the report
      return None
    repeats, efficiency = report.latency_repeats(config), None
    if repeats:
      examples = {s: inference.stage_example(config, s) for s in config.stage_order}
      efficiency = profile.efficiency(config, corpus.num_classes, examples, repeats)
    # A run of some folds names its report by them: the whole run's report stays as it was.
    stem = report.file_stem(config)
    if len(mine) < len(folds):
      stem += f".folds_{folds_label(mine)}"
    rep = report.write(workdir, config, corpus, list(mine.values()), results, seconds=seconds,
                       efficiency=efficiency, stem=stem)
  print(report.summary(rep))
  return rep


def finished_folds(runner, stages, folds: dict, workdir: str) -> dict:
  """{fold name: {stage: result}} of the `folds` ({index: fold}) whose every stage has a
  result of this config; names the others on stdout; UserError when none has."""
  from jaxser.errors import UserError
  results = {}
  for fold in folds.values():
    got = {s: runner.finished_result(s, fold) for s in stages}
    missing = [s for s, r in got.items() if r is None]
    if missing:
      print(f"{fold.name}: left out of the report, still to run: {', '.join(missing)}")
    else:
      results[fold.name] = got
  if not results:
    raise UserError(f"--report_only: no fold of --workdir {workdir} has a result for every "
                    f"stage ({', '.join(stages)}) yet; nothing to report")
  return results


def _config_file(argv) -> str | None:
  for i, a in enumerate(argv):
    if a == "--config" and i + 1 < len(argv):
      return argv[i + 1]
    if a.startswith("--config="):
      return a.split("=", 1)[1]
  return None


def _unknown_setting(argv, key: str) -> str:
  """Names the override that failed and the settings valid where it points."""
  from jaxser.config_utils import load_config_file
  bad = next((a.split("=", 1)[0] for a in argv if a.startswith("--config.")
              and key in a.split("=", 1)[0].split(".")), f"--config...{key}")
  path = bad[len("--config."):].split(".")
  known = []
  try:
    node = load_config_file(_config_file(argv))
    for part in path[:path.index(key)]:
      node = node[part]
    known = sorted(node.keys())
  except Exception:  # the listing is a courtesy; the error below stands without it
    pass
  where = ".".join(["config"] + path[:path.index(key)]) if key in path else "config"
  return (f"error: {bad}: {where} has no setting {key!r}"
          + (f"; its settings are {known}" if known else "") + ". See --helpfull.")


def _parse_flags(argv):
  """absl flag parsing, with a one-line error for an override of an unknown setting."""
  try:
    return flags.FLAGS(argv)
  except (AttributeError, KeyError) as e:
    import re
    found = re.search(r"'([A-Za-z0-9_]+)", str(e))
    hint = re.search(r'Did you mean "([^"]+)"', str(e))
    message = _unknown_setting(argv, found.group(1) if found else str(e))
    print(message + (f' Did you mean "{hint.group(1)}"?' if hint else ""), file=sys.stderr)
    sys.exit(2)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}; settings go in --config.<key>=<value>")
  config = _CONFIG.value
  if config is None:
    raise app.UsageError("--config is required, e.g. --config configs/quickstart.py")
  logging.set_verbosity(logging.WARNING)
  import jax
  import tensorflow as tf
  tf.config.set_visible_devices([], "GPU")  # tf.data only; accelerators belong to JAX
  # tf.data only gathers rows here; small TF pools leave the cores to XLA.
  tf.config.threading.set_inter_op_parallelism_threads(1)
  tf.config.threading.set_intra_op_parallelism_threads(1)
  jax.config.update("jax_compilation_cache_dir",
                    os.environ.get("JAX_COMPILATION_CACHE_DIR",
                                   os.path.expanduser("~/.cache/jaxser/xla")))
  workdir = _WORKDIR.value or os.path.join("runs", config.name)
  from jaxser import distributed
  from jaxser.errors import UserError
  try:
    distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                           _DISTRIBUTED.value)  # before anything touches a device
    run(config, workdir, _FOLDS.value, make_parents=_WORKDIR.value is None,
        skip_bad_files=_SKIP_BAD_FILES.value, report_only=_REPORT_ONLY.value)
  except (UserError, FileNotFoundError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
