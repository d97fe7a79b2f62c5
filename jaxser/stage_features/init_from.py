"""Starting a stage from a teacher stage's weights (`stages.<name>.init_from = dict(stage=,
layers=)`): MLKD's students start from the teacher's even layers."""

from __future__ import annotations

import os

from jaxser.data import teacher_cache
from jaxser.errors import UserError
from jaxser.models.registry import build_model


def source(stage_cfg) -> str:
  """The stage whose weights this stage starts from (`init_from.stage`), or ""."""
  return (stage_cfg.get("init_from") or {}).get("stage", "")


def weights_needed_later(config, name: str) -> bool:
  """Whether a stage of `config.stage_order` starts from stage `name`'s weights."""
  return any(source(config.stages[s]) == name for s in config.stage_order)


def check(config, name: str, model, num_classes: int) -> None:
  """`stages.<name>.init_from`: a model that can start from a teacher, and (encoders) one
  teacher layer for each of its layers, each a layer the teacher has."""
  spec, where = config.stages[name].init_from, f"config.stages.{name}.init_from"
  if not hasattr(model, "init_from_teacher"):
    raise UserError(f"{where}: model {config.stages[name].model.name!r} cannot start "
                    "from a teacher")
  teacher = build_model(config.stages[spec.stage].model, num_classes)
  if not (hasattr(model, "encoder_config") and hasattr(teacher, "encoder_config")):
    return
  layers = tuple(spec.get("layers", ()))
  ours, theirs = (m.encoder_config().num_hidden_layers for m in (model, teacher))
  if len(layers) != ours:
    raise UserError(f"{where}.layers={layers}: {len(layers)} teacher layers for a student of "
                    f"{ours} layers; give one teacher layer per layer")
  if not all(1 <= k <= theirs for k in layers):
    raise UserError(f"{where}.layers={layers}: teacher {spec.stage!r} has layers 1-{theirs}")


def init_variables(config, name: str, model, fold_dir: str, source_hash: str):
  """`trainer.create_state`'s init_variables for stage `name` (None without `init_from`): the
  teacher's weights from its cache in `fold_dir`, written under `source_hash`."""
  spec = config.stages[name].get("init_from")
  if not spec:
    return None
  path = os.path.join(fold_dir, "cache", spec.stage)
  fresh = teacher_cache.read_if_fresh(path, {"teacher": spec.stage, "hash": source_hash})
  params = teacher_cache.read_params(path) if fresh is not None else None
  if params is None:
    raise RuntimeError(f"{path} holds no current weights of {spec.stage!r} for {name!r} to "
                       "start from; delete that directory and re-run to rebuild it")
  # A teacher on cached encoder states holds only what it trained: complete it first.
  teacher = build_model(config.stages[spec.stage].model, model.num_classes)
  if hasattr(teacher, "full_params"):
    params = teacher.full_params(params)
  return lambda variables: model.init_from_teacher(variables, params, tuple(spec.layers))
