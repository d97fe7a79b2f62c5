"""scripts/rehash_results.py: a run written when stage hashes held corpus.manual_dir resumes
without training once re-keyed."""

import glob
import os
import subprocess
import sys

import ml_collections

from jaxser import io_utils, stage_plan, train
from tiny_config import ROOT, tiny_mlps


def _hashed_files(workdir) -> list[str]:
  pattern = lambda *p: glob.glob(os.path.join(workdir, "fold_*", *p))
  return (pattern("*", "result.json") + pattern("cache", "*", "meta.json")
          + pattern("*", "checkpoints*", "stage_hash"))


def _hash_of(path: str) -> str:
  if path.endswith("stage_hash"):
    return open(path).read().strip()
  return io_utils.read_json(path)["hash"]


def _replace_hashes(paths, mapping: dict) -> int:
  """Rewrites each file's hash by `mapping`; how many files changed."""
  changed = 0
  for path in paths:
    old = _hash_of(path)
    if old in mapping:
      if path.endswith("stage_hash"):
        io_utils.write_text(path, mapping[old])
      else:
        io_utils.write_json(path, {**io_utils.read_json(path), "hash": mapping[old]})
      changed += 1
  return changed


def test_a_run_keyed_by_the_corpus_path_is_reused_after_rehashing(tmp_path, capsys):
  config = tiny_mlps(epochs=2)
  workdir = str(tmp_path / "run")
  train.run(config, workdir)
  current = stage_plan.stage_hashes(config, config.stage_order)
  # The run as the code before 2026-12-06 wrote it on a machine with the corpus at /old/data:
  # its config.json records the path and every file carries the hash that held it.
  recorded = io_utils.read_json(os.path.join(workdir, "config.json"))
  recorded["corpus"]["manual_dir"] = "/old/data"
  io_utils.write_json(os.path.join(workdir, "config.json"), recorded)
  located = stage_plan.stage_hashes(ml_collections.ConfigDict(recorded), with_location=True)
  assert all(located[s] != current[s] for s in current)
  files = _hashed_files(workdir)
  # results and checkpoint markers of both stages, and the teacher's cache
  assert _replace_hashes(files, {current[s]: located[s] for s in current}) == len(files) >= 5

  proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "rehash_results.py"),
                         str(tmp_path)], capture_output=True, text=True, check=True)
  assert f"{len(files)} files rehashed, 0 already current" in proc.stdout
  assert {_hash_of(f) for f in files} == set(current.values())

  capsys.readouterr()
  train.run(config, workdir)
  out = capsys.readouterr().out
  assert "teacher: done earlier" in out and "student_kd: done earlier" in out
  assert "epoch 1:" not in out and "cache rebuilt" not in out  # nothing trained or rebuilt
