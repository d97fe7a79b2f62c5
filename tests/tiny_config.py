"""The quickstart config shrunk to seconds: tiny corpus, one fold, tiny models."""

import os

from jaxser.config_utils import load_config_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(name: str):
  """get_config() of configs/<name>.py (`name:variant` for a variant)."""
  path, sep, variant = name.partition(":")
  return load_config_file(os.path.join(ROOT, "configs", f"{path}.py") + sep + variant)


def tiny_quickstart(epochs: int = 2):
  c = load_config("quickstart")
  c.corpus.update(dict(num_speakers=8, utterances_per_speaker=8, min_seconds=0.5, max_seconds=1.0))
  c.protocol.update(dict(num_folds=4, max_folds=1))
  c.train.update(dict(epochs=epochs, batch_size=8, eval_batch_size=8))
  for s in c.stages.values():
    s.train.epochs, s.train.batch_size = None, None  # inherit the tiny settings above
  c.stages.teacher.model.update(dict(hidden=(8,)))
  for s in ("student_alone", "student_kd"):
    c.stages[s].model.update(dict(stem_features=4, block_features=(4, 8, 8), hidden=8))
    c.stages[s].input.max_seconds = 1.0
  return c


def tiny_mlps(epochs: int = 2):
  """`tiny_quickstart` with MLPs on eGeMAPS functionals only: the teacher and a KD student that
  reads its cache, quick to compile; no latency table."""
  c = tiny_quickstart(epochs)
  c.stage_order = ("teacher", "student_kd")
  c.stages.student_kd.model = c.stages.teacher.model.to_dict()
  c.stages.student_kd.input = c.stages.teacher.input.to_dict()
  c.report.latency_repeats = 0
  return c


def get_config():
  """`tiny_mlps()` as a config file: `python -m jaxser.train --config tests/tiny_config.py`."""
  return tiny_mlps()
