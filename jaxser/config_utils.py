"""Config helpers: plain-dict view and a stable hash of config parts."""

from __future__ import annotations

import hashlib
import json


def to_dict(cfg):
  """A ConfigDict (or anything JSON-able) as plain JSON data."""
  return json.loads(cfg.to_json_best_effort()) if hasattr(cfg, "to_json_best_effort") else cfg


# Where a setting's data lies, which differs between checkouts of one run (results/ runs are
# committed with the paths of the machine that ran them): kept out of stage hashes and of the
# run-directory config check; what the corpus holds is compared by its fingerprint instead.
LOCATIONS = (("corpus", "manual_dir"),)


def without_locations(resolved: dict) -> dict:
  """A plain-dict config (or part of one, keyed by section) without its `LOCATIONS`."""
  out = dict(resolved)
  for section, key in LOCATIONS:
    if isinstance(out.get(section), dict):
      out[section] = {k: v for k, v in out[section].items() if k != key}
  return out


def config_hash(*parts) -> str:
  """Stable short hash of config parts (ConfigDicts or JSON-able values)."""
  blob = json.dumps([to_dict(p) for p in parts], sort_keys=True, default=str)
  return hashlib.sha1(blob.encode()).hexdigest()[:16]


# Settings of config.train that a stage may override; None inherits config.train.
TRAIN_OVERRIDES = {"epochs": int, "batch_size": int, "eval_batch_size": int,
                   "learning_rate": float, "weight_decay": float, "optimizer": str,
                   "schedule": str, "warmup_epochs": float, "grad_clip_norm": float,
                   "grad_accum_steps": int, "select": str}


# Settings a stage may also override, present in its block only when given (so the blocks,
# and stage hashes, of stages that do not set them stay as they were).
TRAIN_EXTRAS = ("plateau", "early_stopping", "refit", "encoder_learning_rate", "seed")


def stage_train(**overrides):
  """A stage's `train` block: typed placeholders (None = inherit), so the command line can set
  any of them, e.g. --config.stages.student_kd.train.epochs=20; `TRAIN_EXTRAS` when given."""
  from ml_collections import config_dict
  unknown = set(overrides) - set(TRAIN_OVERRIDES) - set(TRAIN_EXTRAS)
  if unknown:
    raise ValueError(f"stage_train: {sorted(unknown)} are not stage-level train settings; "
                     f"use {sorted(TRAIN_OVERRIDES) + list(TRAIN_EXTRAS)}")
  block = {k: overrides.get(k, config_dict.placeholder(t)) for k, t in TRAIN_OVERRIDES.items()}
  block.update({k: overrides[k] for k in TRAIN_EXTRAS if k in overrides})
  return config_dict.ConfigDict(block)


def load_config_file(spec: str):
  """get_config() of a config file named as `--config` takes it: `path` or `path:variant`."""
  import os
  path, _, variant = spec.partition(":")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"config file {path!r} not found; name one of configs/, "
                            "e.g. configs/quickstart.py")
  module = _load_module(path, "_config")
  return module.get_config(variant) if variant else module.get_config()


def load_sibling(config_file: str, name: str):
  """The module of config `name`.py in the folder of `config_file` (a config's __file__), for
  a config that states only what differs from another: `base = load_sibling(__file__, "x")`
  then `c = base.get_config(); c.name = ...` (configs/ is read by path, not as a package)."""
  import os
  return _load_module(os.path.join(os.path.dirname(os.path.abspath(config_file)), f"{name}.py"),
                      name)


def _load_module(path: str, name: str):
  import importlib.util
  module_spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module
