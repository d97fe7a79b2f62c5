"""A finished run for inference: its config, class names, stages and best checkpoints.

Shared by `python -m jaxser.predict` and `python -m jaxser.export`. A run directory written
by `python -m jaxser.train` holds `config.json` (the resolved config) and, per fold and
stage, `fold_<k>/<stage>/checkpoints/best` (`checkpoints_refit/best` for a stage with
`train.refit`: the model the stage was tested with).
"""

from __future__ import annotations

import dataclasses
import os
import re

import flax
import jax
import ml_collections

from jaxser import io_utils, trainer
from jaxser.checkpoints import StageCheckpoints
from jaxser.data import normalization
from jaxser.data.registry import class_names
from jaxser.errors import UserError
from jaxser.stage_plan import resolve_stage_train
from jaxser.models.registry import build_model


@dataclasses.dataclass
class StageModel:
  """One fold's best model of a stage, ready for `apply`."""

  stage: str
  fold: int
  model: flax.linen.Module
  variables: dict  # {"params": ..., "batch_stats": ...} as the trainer applies them
  epoch: int  # the best epoch (0-based) the checkpoint holds


def read_config(run: str) -> ml_collections.ConfigDict:
  """The resolved config of run directory `run`."""
  path = os.path.join(run, "config.json")
  if not os.path.isdir(run):
    raise UserError(f"--run {run} is not a directory; name a run directory written by "
                    "python -m jaxser.train, e.g. runs/quickstart")
  if not os.path.isfile(path):
    raise UserError(f"--run {run} holds no config.json, so it is not a run directory of "
                    "python -m jaxser.train (or that run never started); e.g. runs/quickstart")
  return ml_collections.ConfigDict(io_utils.read_json(path))


def sample_rate(config) -> int:
  """The rate (Hz) the run's audio was resampled to, which its models expect."""
  return int(config.corpus.get("sample_rate", 16000))


def classes(config) -> tuple[str, ...]:
  """Class names of the run's corpus, in label order (no audio is read)."""
  return class_names(config.corpus)


def default_stage(config) -> str:
  """The run's distilled student: the last stage of `stage_order` with teachers, else the last."""
  order = list(config.stage_order)
  students = [s for s in order if config.stages[s].get("teachers")]
  return (students or order)[-1]


def check_stage(config, stage: str, run: str) -> None:
  """Refuses a stage that is not in the run, or whose input needs more than one audio file:
  transcripts (tokens) or statistics over other examples (`input.normalization`)."""
  if stage not in config.stages:
    raise UserError(f"--stage {stage!r} is not a stage of the run in {run}; its stages are "
                    f"{list(config.stage_order)}")
  input_cfg = config.stages[stage].input
  audio = [s for s in config.stage_order if config.stages[s].input.kind != "tokens"
           and normalization.mode(config.stages[s].input, s) == "none"]
  others = f"; choose another --stage ({', '.join(audio) or 'this run has none'})"
  if input_cfg.kind == "tokens":
    raise UserError(f"stage {stage!r} reads transcripts (config.stages.{stage}.input.kind="
                    f"'tokens'), not audio{others}")
  norm = normalization.mode(input_cfg, stage)
  if norm != "none":
    why = ("the fold's training statistics, which the run does not store" if norm == "train"
           else "each speaker's statistics over all of the speaker's clips")
    raise UserError(f"stage {stage!r} standardises its inputs with {why} (config.stages."
                    f"{stage}.input.normalization={norm!r}); one file alone cannot be "
                    f"normalised the same way{others}")


def _checkpoint_dir(run: str, config, stage: str, fold: int) -> str:
  refit = resolve_stage_train(config, stage).get("refit", False)
  return os.path.join(run, f"fold_{fold}", stage, "checkpoints_refit" if refit else "checkpoints")


def has_best(run: str, config, stage: str, fold: int) -> bool:
  best = os.path.join(_checkpoint_dir(run, config, stage, fold), "best")
  return os.path.isdir(best) and any(n.isdigit() for n in os.listdir(best))


def folds_with_best(run: str, config, stage: str) -> list[int]:
  """Indices of the folds of `run` that hold a best checkpoint of `stage`."""
  found = [int(m.group(1)) for n in os.listdir(run) if (m := re.fullmatch(r"fold_(\d+)", n))]
  return sorted(k for k in found if has_best(run, config, stage, k))


def load(run: str, config, stage: str, fold: int) -> StageModel:
  """The best model of `stage` in fold `fold`, restored on the default device."""
  if not has_best(run, config, stage, fold):
    done = folds_with_best(run, config, stage)
    raise UserError(
        f"{_checkpoint_dir(run, config, stage, fold)}/best does not exist: fold {fold} of "
        f"stage {stage!r} has no best checkpoint here (checkpoints stay on the machine that "
        f"trained); " + (f"choose --fold from {done}" if done else
                         f"train it with python -m jaxser.train --workdir {run} --folds {fold}"))
  model = build_model(config.stages[stage].model, len(classes(config)))
  # The trainer saves the whole train state, so its tree is rebuilt from shapes alone
  # (no weights are computed or read from a pretrained checkpoint here).
  example_x, example_len = stage_example(config, stage)
  variables = jax.eval_shape(lambda: model.init(
      {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(0)}, example_x,
      example_len, train=False))
  tx = trainer.make_optimizer(resolve_stage_train(config, stage), 1,
                              getattr(model, "frozen_params", None),
                              getattr(model, "encoder_params", None))
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  abstract = jax.tree.map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device),
      trainer.TrainState(step=jax.ShapeDtypeStruct((), "int32"), params=variables["params"],
                         batch_stats=variables.get("batch_stats", {}),
                         opt_state=jax.eval_shape(tx.init, variables["params"]),
                         rng=jax.eval_shape(lambda: jax.random.PRNGKey(0))))
  ckpts = StageCheckpoints(_checkpoint_dir(run, config, stage, fold))
  try:
    state, meta = ckpts.restore_best(abstract)
  except (ValueError, KeyError, FileNotFoundError) as e:
    raise UserError(f"{_checkpoint_dir(run, config, stage, fold)}/best does not fit stage "
                    f"{stage!r} of {run}/config.json ({str(e).splitlines()[0][:300]}); was "
                    "config.json edited after training? Restore it or train again") from e
  finally:
    ckpts.close()
  variables = {"params": state.params,
               **({"batch_stats": state.batch_stats} if state.batch_stats else {})}
  return StageModel(stage, fold, model, variables, int(meta.get("epoch", -1)))


def on_waveforms(input_cfg, stage_model: StageModel | None = None):
  """(input config, StageModel) of the same model on the `waveform` input: a stage on cached
  Whisper states (input kind `whisper_states`) becomes its Whisper model with the log-mel
  and the frozen layers in the graph, their weights from the checkpoint; others unchanged."""
  if input_cfg.kind != "whisper_states":
    return input_cfg, stage_model
  keep = ("max_seconds", "normalize", "segment")
  waveform = ml_collections.ConfigDict(dict(
      {k: input_cfg[k] for k in keep if k in input_cfg}, kind="waveform",
      normalize=input_cfg.get("normalize", True)))
  if stage_model is None:
    return waveform, None
  model = stage_model.model.clone(frontend="whisper_logmel")
  variables = {**stage_model.variables,
               "params": stage_model.model.full_params(stage_model.variables["params"])}
  return waveform, dataclasses.replace(stage_model, model=model, variables=variables)


def window_seconds(input_cfg) -> float | None:
  """Seconds of audio one example of the input covers: its segment, else its `max_seconds`
  (None: the whole clip, e.g. functionals)."""
  if input_cfg.get("segment"):
    return float(input_cfg.segment.seconds)
  seconds = input_cfg.get("max_seconds")
  if seconds is None and input_cfg.kind.startswith("whisper"):
    return 30.0  # the Whisper kinds' default cut
  return None if seconds is None else float(seconds)


def stage_example(config, stage: str):
  """A batch-1 (x, length) shaped like one example of the stage's input: a random clip of the
  stage's length (its window's, for windowed inputs) through the stage's input builder, the
  same builder training uses, so shapes match the report's efficiency table."""
  import jax.numpy as jnp
  import numpy as np
  from jaxser.config_utils import to_dict
  from jaxser.data.corpus import Corpus, Utterance
  from jaxser.data.inputs import build_inputs
  spec = to_dict(config.stages[stage].input)
  spec.pop("segment", None)
  seconds = window_seconds(config.stages[stage].input)
  if seconds is not None:
    spec["max_seconds"] = seconds
  utt = Utterance("example", "", 0)
  n = int(round((seconds or 1.0) * sample_rate(config)))
  wave = 0.1 * np.random.default_rng(0).standard_normal(n).astype(np.float32)
  arrays = build_inputs(Corpus("example", classes(config), sample_rate(config), [utt],
                               waveforms={utt.id: wave}), ml_collections.ConfigDict(spec))
  return jnp.asarray(arrays.x[:1]), jnp.asarray(arrays.length[:1])
