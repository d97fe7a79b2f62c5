"""One stage of one fold: build, train (resumably), evaluate, and cache outputs for later stages.

With several processes (`jaxser.distributed`) every process runs every stage in step;
process 0 alone writes results, caches and logs, and the others wait for it where they
read what it wrote.
"""

from __future__ import annotations

import json
import os
import time
import zlib

import jax
import ml_collections
import numpy as np
from clu import metric_writers

from jaxser import distributed, io_utils, pretrained, sharding, trainer
from jaxser.checkpoints import StageCheckpoints
from jaxser.data import normalization, teacher_cache
from jaxser.data.augment import NoiseAugment
from jaxser.data.inputs import KINDS, InputArrays, build_inputs
from jaxser.data.pipeline import Pipeline
from jaxser.data.spec_augment import SpecAugment
from jaxser.errors import UserError
from jaxser.features import noise as noise_lib
from jaxser.features import whisper_mel
from jaxser.methods import common
from jaxser.models.registry import build_model
from jaxser.config_utils import config_hash, to_dict


# Input kinds with [frames, features] examples, the ones `spec_augment` can mask.
FRAME_KINDS = ("logfbank", "egemaps_lld", "whisper_logmel")
# Steps per epoch the optimizer is built with to check its settings before the folds are
# known: enough that a schedule of one epoch has steps left to decay over.
_CHECK_STEPS_PER_EPOCH = 100


def param_count(tree) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


def _groups(inputs, utt_ids):
  """`trainer.evaluate` groups for segmented inputs of `utt_ids` (None when unsegmented)."""
  if not inputs.segmented:
    return None
  utt_ids = list(utt_ids)
  position = {u: i for i, u in enumerate(utt_ids)}
  utts = inputs.example_utts(inputs.example_ids(utt_ids, train=False))
  return np.asarray([position[u] for u in utts]), len(utt_ids), inputs.aggregate


def _say(message: str) -> None:
  """Prints on process 0 only (every process runs the same stages)."""
  if distributed.is_main():
    print(message)


def _write_cache(path, ids, outs, meta, **kwargs) -> None:
  """`teacher_cache.write_batches` on process 0; the others run the same predict steps
  (collective) and then wait until the cache is in place for later stages to read."""
  if distributed.is_main():
    teacher_cache.write_batches(path, ids, outs, meta, **kwargs)
  else:
    for _ in outs:
      pass
  distributed.barrier(f"teacher cache {path}")


def resolve_stage_train(config, name: str) -> ml_collections.ConfigDict:
  """`config.train` with stage `name`'s own `train` settings (those not None) on top."""
  cfg = config.train.copy_and_resolve_references()
  with cfg.unlocked():
    cfg.update({k: v for k, v in dict(config.stages[name].get("train", {})).items()
                if v is not None})
  return cfg


class Experiment:
  """Holds what stages share across folds: corpus, inputs per kind, compiled steps."""

  def __init__(self, config, corpus, method, mesh, workdir: str):
    self.config, self.corpus, self.method, self.mesh = config, corpus, method, mesh
    self.workdir = workdir
    self._inputs = {}
    self._steps = {}
    self._labels = {u.id: u.label for u in corpus.utterances}
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
      source = self._init_source(name)
      if source and source not in names[:i]:
        raise UserError(f"config.stages.{name}.init_from.stage names {source!r}, which is not "
                        f"a stage before it; stages in order: {names}")
      if not hasattr(method, config.stages[name].loss):
        raise UserError(f"config.stages.{name}.loss={config.stages[name].loss!r} is not a loss "
                        f"of method {config.method!r} ({method.__file__})")
      self._check_normalization(name)
      self._check_stage(name)

  def _check_stage(self, name) -> None:
    """Refuses now what would otherwise fail only when stage `name` starts, after the stages
    before it trained: its input kind, model, pretrained checkpoints, init_from, optimizer,
    batch sizes, KD teacher, noise (folders included) and spec_augment."""
    stage, where = self.config.stages[name], f"config.stages.{name}"
    kind = stage.input.kind
    if kind not in KINDS:
      raise UserError(f"{where}.input.kind={kind!r} is unknown; choose one of {sorted(KINDS)}")
    if kind.startswith("whisper") and self.corpus.sample_rate != whisper_mel.SAMPLE_RATE:
      raise UserError(f"{where}.input.kind={kind!r} needs 16 kHz audio; set config.corpus."
                      f"sample_rate=16000 (now {self.corpus.sample_rate})")
    teacher = (stage.get("loss_cfg") or {}).get("teacher")
    if isinstance(teacher, str) and teacher not in stage.get("teachers", ()):
      raise UserError(f"{where}.loss_cfg.teacher={teacher!r} is not one of {where}.teachers "
                      f"{tuple(stage.get('teachers', ()))}, so its outputs would not be cached")
    try:
      if "train" in self.config:  # (an Experiment made only to build inputs may have none)
        tcfg = self.stage_train_cfg(name)
        if self.mesh is not None:
          sharding.check_batch_size(tcfg.batch_size, self.mesh,
                                    f"config.train.batch_size ({name})")
          sharding.check_batch_size(tcfg.eval_batch_size, self.mesh,
                                    f"config.train.eval_batch_size ({name})")
        trainer.make_optimizer(tcfg, _CHECK_STEPS_PER_EPOCH)
      model = build_model(stage.model, self.corpus.num_classes)
    except UserError:
      raise
    except ValueError as e:
      raise UserError(f"{where}: {e}") from e
    for part in ("model", "input"):  # a pretrained checkpoint: there, or in the local cache
      if stage[part].get("checkpoint"):
        try:
          pretrained.resolve_directory(stage[part].checkpoint)
        except FileNotFoundError as e:
          raise UserError(f"{where}.{part}.checkpoint: {e}") from e
    if stage.get("init_from"):
      self._check_init_from(name, model)
    if stage.get("noise"):
      if stage.get("spec_augment"):
        raise UserError(f"{where}: `noise` (waveforms) and `spec_augment` (features) cannot both "
                        "apply to one input; keep one")
      self._check_noise(name, stage.noise, f"{where}.noise")
    if stage.get("spec_augment") and kind not in FRAME_KINDS:
      raise UserError(f"{where}.spec_augment masks [frames, features] inputs, but input kind "
                      f"{kind!r} gives none; use it with one of {FRAME_KINDS}")
    if self.config.get("eval_noise") and kind == "waveform":  # the grid skips other kinds
      self._check_noise(name, self.config.eval_noise, "config.eval_noise")

  def _check_init_from(self, name, model) -> None:
    """`stages.<name>.init_from`: a model that can start from a teacher, and (encoders) one
    teacher layer for each of its layers, each a layer the teacher has."""
    spec, where = self.config.stages[name].init_from, f"config.stages.{name}.init_from"
    if not hasattr(model, "init_from_teacher"):
      raise UserError(f"{where}: model {self.config.stages[name].model.name!r} cannot start "
                      "from a teacher")
    teacher = build_model(self.config.stages[spec.stage].model, self.corpus.num_classes)
    if not (hasattr(model, "encoder_config") and hasattr(teacher, "encoder_config")):
      return
    layers = tuple(spec.get("layers", ()))
    ours, theirs = (m.encoder_config().num_hidden_layers for m in (model, teacher))
    if len(layers) != ours:
      raise UserError(f"{where}.layers={layers}: {len(layers)} teacher layers for a student of "
                      f"{ours} layers; give one teacher layer per layer")
    if not all(1 <= k <= theirs for k in layers):
      raise UserError(f"{where}.layers={layers}: teacher {spec.stage!r} has layers 1-{theirs}")

  def _check_noise(self, name, cfg, where) -> None:
    """A noise setting (`where`) for stage `name`: a waveform stage, SNRs given, the folder of
    recordings there (not read yet) and every type on offer."""
    kind = self.config.stages[name].input.kind
    if kind != "waveform":
      raise UserError(f"{where} adds noise to waveforms, but stage {name!r} has input kind "
                      f"{kind!r}")
    if not tuple(cfg.get("snr_db", ())):
      raise UserError(f"{where}.snr_db is empty; give at least one SNR in dB")
    try:
      files = noise_lib.recording_files(cfg.dir) if cfg.get("dir") else {}
    except (FileNotFoundError, ValueError) as e:
      raise UserError(f"{where}.dir: {e}") from e
    offered = sorted(set(files) | set(noise_lib.GENERATORS) | {"babble"})
    unknown = [t for t in cfg.get("types", ()) if t not in offered]
    if unknown:
      raise UserError(f"{where}.types {unknown} are unknown; on offer: {offered}")

  def _check_normalization(self, name) -> None:
    """Refuses `input.normalization` with waveform noise: noise is mixed into the clips after
    the statistics were taken on clean audio (and "speaker" would not see the noisy test
    audio), so the model would meet inputs the statistics do not describe."""
    stage = self.config.stages[name]
    norm = normalization.mode(stage.input, name)
    noisy = stage.get("noise") or (self.config.get("eval_noise") and
                                   stage.input.kind == "waveform")
    if norm != "none" and noisy:
      raise UserError(f"config.stages.{name}.input.normalization={norm!r} cannot be combined "
                      f"with waveform noise (stages.{name}.noise or config.eval_noise): noise is "
                      "mixed after the statistics are taken on clean audio; use normalization="
                      "'none' (waveform's per-utterance `normalize` re-normalises noisy clips)")

  # -- what a stage depends on -------------------------------------------------------------
  def stage_train_cfg(self, name):
    return resolve_stage_train(self.config, name)

  def _init_source(self, name) -> str:
    """The stage whose weights `name` starts from (`stages.<name>.init_from.stage`), or ""."""
    return (self.config.stages[name].get("init_from") or {}).get("stage", "")

  def stage_hash(self, name) -> str:
    stage = self.config.stages[name]
    sources = list(stage.get("teachers", ())) + ([self._init_source(name)]
                                                 if self._init_source(name) else [])
    # The noisy test grid is part of a stage's result; hashed only when set, so results of
    # configs without one keep their hashes.
    grid = [to_dict(self.config.eval_noise)] if self.config.get("eval_noise") else []
    return config_hash(to_dict(self.config.corpus), to_dict(self.config.protocol), self.config.seed,
                       self.config.method, to_dict(stage), to_dict(self.stage_train_cfg(name)),
                       [self.stage_hash(t) for t in sources], *grid)

  def inputs(self, name):
    """The stage's inputs for every utterance, fold-independent ("speaker" normalisation
    applied; "train" is not: see `fold_inputs`)."""
    spec = to_dict(self.config.stages[name].input)
    key = json.dumps(spec, sort_keys=True)
    if key not in self._inputs:
      self._inputs[key] = build_inputs(self.corpus, self.config.stages[name].input)
    return self._inputs[key]

  def fold_inputs(self, name, fold):
    """The stage's inputs in `fold`: with `input.normalization="train"` standardised by the
    statistics of the fold's training examples (fold-dependent, so not kept across folds)."""
    inputs = self.inputs(name)
    if normalization.mode(self.config.stages[name].input, name) != "train":
      return inputs
    return normalization.by_train(inputs, inputs.example_ids(fold.train, train=True))

  def _loss_cfg(self, name, inputs, train_ids):
    """The stage's loss_cfg in this fold: `class_weights="balanced"` resolved from the labels
    of the fold's training examples (the train step is compiled per resolved value)."""
    return common.resolve_class_weights(self.config.stages[name].get("loss_cfg", {}),
                                        inputs.label[inputs.rows(train_ids)],
                                        self.corpus.num_classes)

  def _noise(self, name, inputs, train_ids, cfg=None, seed=None):
    """A noise augmenter over `inputs` (default: the stage's training noise,
    `stages.<name>.noise`), or None when the stage has none."""
    where = f"config.stages.{name}.noise" if cfg is None else "config.eval_noise"
    cfg = cfg if cfg is not None else self.config.stages[name].get("noise")
    if not cfg:
      return None
    if self.config.stages[name].input.kind != "waveform":
      raise UserError(f"{where} adds noise to waveforms, but stage {name!r} has input kind "
                      f"{self.config.stages[name].input.kind!r}")
    utts = inputs.example_utts(inputs.ids)
    speaker = {u.id: u.speaker for u in self.corpus.utterances}
    return NoiseAugment(cfg, inputs, list(train_ids),
                        {i: speaker[u] for i, u in zip(inputs.ids.tolist(), utts.tolist())},
                        self.corpus.sample_rate, self.config.seed if seed is None else seed,
                        bool(self.config.stages[name].input.get("normalize", True)))

  def _augment(self, name, inputs, train_ids):
    """The stage's training-batch augmenter: waveform noise (`stages.<name>.noise`), feature
    masking (`stages.<name>.spec_augment`), or None."""
    # `_check_stage` refused both at once, and masking of inputs without frames.
    stage = self.config.stages[name]
    if not stage.get("spec_augment"):
      return self._noise(name, inputs, train_ids)
    return SpecAugment(stage.spec_augment, self.config.seed, f"config.stages.{name}.spec_augment")

  def _noise_grid(self, name, inputs, train_ids, fold, steps, state) -> dict:
    """Test metrics with every test utterance mixed with each `config.eval_noise` type (all on
    offer when `types` is empty) at each SNR ({"white@0": {ua, wa}, ...}); the same noisy
    copies for every stage."""
    grid_cfg = self.config.get("eval_noise")
    if not grid_cfg or self.config.stages[name].input.kind != "waveform":
      return {}
    labels = np.asarray([self._labels[u] for u in fold.test], np.int32)
    out = {}
    # No types listed: every noise on offer, as for training noise (NoiseAugment resolves it).
    kinds = grid_cfg.types or self._noise(name, inputs, train_ids, cfg=grid_cfg).types
    for kind in kinds:
      for snr in grid_cfg.snr_db:
        one = ml_collections.ConfigDict({**to_dict(grid_cfg), "types": (kind,),
                                         "snr_db": (float(snr),)})
        aug = self._noise(name, inputs, train_ids, cfg=one, seed=(self.config.seed, 1))
        m = trainer.evaluate(steps["predict"], state, self._noisy_eval_ds(name, inputs, fold.test,
                                                                          aug),
                             labels, self.corpus.num_classes, _groups(inputs, fold.test))["metrics"]
        out[f"{kind}@{snr:g}"] = {"ua": m["ua"], "wa": m["wa"]}
    return out

  def _noisy_eval_ds(self, name, inputs, utts, aug):
    """The evaluation dataset of utterances `utts`, each clip mixed by `aug` (a fixed draw)."""
    ids = inputs.example_ids(utts, train=False)
    rows = inputs.rows(ids.tolist())
    x, length = inputs.x[rows], inputs.length[rows]
    noisy = InputArrays(ids=ids, x=aug(ids, x, length, 0), length=length, label=inputs.label[rows])
    return Pipeline(noisy).dataset(ids, self.stage_train_cfg(name).eval_batch_size, train=False)

  def _needed_later(self, name) -> bool:
    return any(name in self.config.stages[s].get("teachers", ())
               for s in self.config.stage_order) or self._weights_needed_later(name)

  def _weights_needed_later(self, name) -> bool:
    return any(self._init_source(s) == name for s in self.config.stage_order)

  def _cache_ready(self, name, path, meta) -> bool:
    """Whether stage `name`'s cache at `path` holds all later stages read from it: current
    outputs, and its weights when a stage starts from them (`init_from`). A cache written
    when only outputs were asked for holds none; it is rebuilt then, from the best checkpoint,
    instead of failing when the stage that wants them starts."""
    if teacher_cache.read_if_fresh(path, meta) is None:
      return False
    return (not self._weights_needed_later(name) or
            os.path.exists(os.path.join(path, teacher_cache.PARAMS_FILE)))

  def _init_variables(self, name, model, fold_dir):
    """`create_state`'s init_variables for a stage with `init_from` (None without)."""
    spec = self.config.stages[name].get("init_from")
    if not spec:
      return None
    if not hasattr(model, "init_from_teacher"):
      raise UserError(f"config.stages.{name}.init_from: model "
                      f"{self.config.stages[name].model.name!r} cannot start from a teacher")
    path = os.path.join(fold_dir, "cache", spec.stage)
    fresh = teacher_cache.read_if_fresh(path, {"teacher": spec.stage,
                                               "hash": self.stage_hash(spec.stage)})
    params = teacher_cache.read_params(path) if fresh is not None else None
    if params is None:
      raise RuntimeError(f"{path} holds no current weights of {spec.stage!r} for {name!r} to "
                         "start from; delete that directory and re-run to rebuild it")
    return lambda variables: model.init_from_teacher(variables, params, tuple(spec.layers))

  # -- steps, compiled once per stage and reused by every fold -----------------------------
  # (keyed by the resolved loss_cfg too: `class_weights="balanced"` holds each fold's own
  # weights, compiled into the step as constants, so folds with other counts recompile)
  def _compiled(self, name, steps_per_epoch, loss_cfg):
    key = (name, steps_per_epoch, config_hash(loss_cfg))
    if key not in self._steps:
      stage = self.config.stages[name]
      tcfg = self.stage_train_cfg(name)
      sharding.check_batch_size(tcfg.batch_size, self.mesh, f"config.train.batch_size ({name})")
      sharding.check_batch_size(tcfg.eval_batch_size, self.mesh,
                                f"config.train.eval_batch_size ({name})")
      model = build_model(stage.model, self.corpus.num_classes)
      tx = trainer.make_optimizer(tcfg, steps_per_epoch, getattr(model, "frozen_params", None))
      loss_fn = getattr(self.method, stage.loss)
      self._steps[key] = dict(
          model=model, tx=tx, cfg=tcfg,
          train=trainer.make_train_step(model, tx, loss_fn, loss_cfg, self.mesh),
          predict=trainer.make_predict_step(model, self.mesh,
                                            tuple(stage.get("outputs", ("logits", "embedding")))))
    return self._steps[key]

  def _refit(self, name, fold, inputs, pipeline, new_state, epochs, augment, valid_ds, ckpts):
    """(state, info): the stage trained afresh on its training and validation examples for the
    `epochs` chosen on validation (`config.train.refit`), the schedule as in the selection run.

    The validation speakers then train too, so the epoch is fixed, not chosen again: the
    last one is kept (no plateau or early stopping). Resumable from its own checkpoints.
    """
    tcfg = self.stage_train_cfg(name)
    with tcfg.unlocked():
      tcfg.update(dict(epochs=epochs, select="last", plateau=dict(patience=0),
                       early_stopping=dict(patience=0)))
    ids = inputs.example_ids(list(fold.train) + list(fold.valid), train=True)
    steps_per_epoch = len(inputs.epoch_ids(ids, self.config.seed, 0)) // tcfg.batch_size
    steps = self._compiled(name, steps_per_epoch, self._loss_cfg(name, inputs, ids))
    labels = np.asarray([self._labels[i] for i in fold.valid], np.int32)
    try:
      meta = trainer.fit(
          state=new_state(steps), train_step=steps["train"], predict_step=steps["predict"],
          train_data=lambda e: pipeline.dataset(inputs.epoch_ids(ids, self.config.seed, e),
                                                tcfg.batch_size, train=True,
                                                seed=self.config.seed, epoch=e, augment=augment),
          valid_data=valid_ds, valid_labels=labels, valid_groups=_groups(inputs, fold.valid),
          num_classes=self.corpus.num_classes, cfg=tcfg, steps_per_epoch=steps_per_epoch,
          ckpts=ckpts, writer=None, desc=f"{fold.name} {name} refit")
      state, _ = ckpts.restore_best(new_state(steps))
    finally:
      ckpts.close()
    return state, {"epochs": epochs, "examples": len(ids), "seconds": round(meta["seconds"], 1)}

  # -- the stage itself --------------------------------------------------------------------
  def run_stage(self, name: str, fold, fold_index: int) -> dict:
    stage = self.config.stages[name]
    fold_dir = os.path.join(self.workdir, fold.name)
    stage_dir = os.path.join(fold_dir, name)
    result_path = os.path.join(stage_dir, "result.json")
    digest = self.stage_hash(name)
    cache_path = os.path.join(fold_dir, "cache", name)
    cache_meta = {"teacher": name, "hash": digest}

    done = None
    if os.path.exists(result_path):
      done = io_utils.read_json(result_path)
      done = done if done.get("hash") == digest else None
    if done and (not self._needed_later(name) or self._cache_ready(name, cache_path, cache_meta)):
      _say(f"{fold.name} {name}: done earlier, UA {done['test']['ua']:.3f}")
      return done

    start = time.time()
    caches = {}
    for t in stage.get("teachers", ()):
      caches[t] = teacher_cache.read_if_fresh(os.path.join(fold_dir, "cache", t),
                                              {"teacher": t, "hash": self.stage_hash(t)})
      if caches[t] is None:
        raise RuntimeError(f"teacher cache of {t!r} for {fold.name} is missing or stale")
    inputs = self.fold_inputs(name, fold)
    pipeline = Pipeline(inputs, caches)
    tcfg = self.stage_train_cfg(name)
    train_ids = inputs.example_ids(fold.train, train=True)
    steps_per_epoch = len(inputs.epoch_ids(train_ids, self.config.seed, 0)) // tcfg.batch_size
    steps = self._compiled(name, steps_per_epoch, self._loss_cfg(name, inputs, train_ids))
    rng = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(self.config.seed), fold_index),
                             zlib.crc32(name.encode()))
    new_state = lambda steps: sharding.put_replicated(trainer.create_state(
        steps["model"], {"x": inputs.x[:1], "length": inputs.length[:1]}, steps["tx"], rng,
        self._init_variables(name, steps["model"], fold_dir)), self.mesh)
    state = new_state(steps)
    labels = lambda ids: np.asarray([self._labels[i] for i in ids], np.int32)
    eval_ds = lambda ids: pipeline.dataset(inputs.example_ids(ids, train=False),
                                           tcfg.eval_batch_size, train=False)
    augment = self._augment(name, inputs, train_ids)
    valid_ds = eval_ds(fold.valid)
    if stage.get("noise") and stage.noise.get("valid", False):
      # Select the best epoch on the condition the stage trains on: the validation clips
      # mixed with its training noise, one fixed draw per clip (own seed stream).
      valid_ds = self._noisy_eval_ds(name, inputs, fold.valid, self._noise(
          name, inputs, train_ids, seed=(self.config.seed, 2)))
    stale = done is None and os.path.exists(result_path)
    distributed.barrier(f"{fold.name} {name}: read")  # every process read; now process 0 writes
    if stale and distributed.is_main():  # a result of another config of this stage; its
      os.remove(result_path)  # checkpoints are too (else a resume would discard its own)
    ckpts = StageCheckpoints(os.path.join(stage_dir, "checkpoints"), digest, discard=stale)
    if done is not None and not ckpts.has_best():  # checkpoints stay local, results are shared
      _say(f"{fold.name} {name}: no checkpoint to rebuild its teacher cache from; training again")
      done = None
    writer = metric_writers.create_default_writer(
        os.path.join(self.workdir, "logs", fold.name, name),
        just_logging=not distributed.is_main(), asynchronous=False)
    try:
      if done is None:  # else only the cache is missing: rebuild it from the best checkpoint
        meta = trainer.fit(
            state=state, train_step=steps["train"], predict_step=steps["predict"],
            train_data=lambda e: pipeline.dataset(
                inputs.epoch_ids(train_ids, self.config.seed, e), tcfg.batch_size, train=True,
                seed=self.config.seed, epoch=e, augment=augment),
            valid_data=valid_ds, valid_labels=labels(fold.valid),
            valid_groups=_groups(inputs, fold.valid),
            num_classes=self.corpus.num_classes, cfg=tcfg, steps_per_epoch=steps_per_epoch,
            ckpts=ckpts, writer=writer, desc=f"{fold.name} {name}")
      best, best_meta = ckpts.restore_best(state)
      refit = None
      if tcfg.get("refit", False):
        best, refit = self._refit(name, fold, inputs, pipeline, new_state, best_meta["epoch"] + 1,
                                  augment, valid_ds, StageCheckpoints(
                                      os.path.join(stage_dir, "checkpoints_refit"), digest))
    finally:
      ckpts.close()
      writer.close()
    if self._needed_later(name):
      # Every example a later stage may ask for: training segments and evaluation segments.
      ids = list(dict.fromkeys(
          train_ids.tolist() + inputs.example_ids(
              list(fold.train) + list(fold.valid) + list(fold.test), train=False).tolist()))
      outs = trainer.predict_batches(steps["predict"], best,
                                     pipeline.dataset(ids, tcfg.eval_batch_size, train=False))
      _write_cache(cache_path, ids, outs, {**cache_meta, "best_epoch": best_meta["epoch"]},
                   fp16=bool(stage.get("cache_fp16", False)),
                   params=best.params if self._weights_needed_later(name) else None)
    if done is not None:
      _say(f"{fold.name} {name}: teacher cache rebuilt from the best checkpoint")
      return done
    test = trainer.evaluate(steps["predict"], best, eval_ds(fold.test), labels(fold.test),
                            self.corpus.num_classes, _groups(inputs, fold.test))
    # How well the tested model fits its own training utterances (clean, as evaluated).
    fit = trainer.evaluate(steps["predict"], best, eval_ds(fold.train), labels(fold.train),
                           self.corpus.num_classes, _groups(inputs, fold.train))["metrics"]
    result = {
        "stage": name, "fold": fold.name, "hash": digest, "test": test["metrics"],
        "valid": best_meta["valid"], "best_epoch": best_meta["epoch"],
        "train_fit": {m: fit[m] for m in ("ua", "wa", "loss")},
        "epochs_run": meta["epoch"] + 1, "params": param_count(best.params),
        "history": meta["history"], "seconds": round(time.time() - start, 1),
        "train_seconds": round(meta["seconds"] + (refit or {}).get("seconds", 0.0), 1),
        **({"refit": refit} if refit else {}),
        "predictions": {"ids": list(fold.test),
                        "pred": test["outputs"]["logits"].argmax(1).tolist()},
        "noisy": self._noise_grid(name, inputs, train_ids, fold, steps, best),
    }
    if distributed.is_main():
      io_utils.write_json(result_path, result)
    _say(f"{fold.name} {name}: test UA {result['test']['ua']:.3f} WA {result['test']['wa']:.3f} "
          f"(best epoch {result['best_epoch'] + 1}, {result['seconds']} s)")
    return result
