"""One stage of one fold: build, train (resumably), evaluate, and cache outputs for later stages.

With several processes (`jaxser.distributed`) every process runs every stage in step;
process 0 alone writes results, caches and logs, and the others wait for it where they
read what it wrote. Each stage's train settings, sources and hash are resolved once
(`jaxser.stage_plan`) and its settings checked at construction (`jaxser.stage_checks`);
features only some stages use (noise, `init_from`, segments) are in `jaxser.stage_features`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import zlib

import jax
import numpy as np
from clu import metric_writers

from jaxser import distributed, io_utils, sharding, stage_checks, stage_plan, trainer
from jaxser.checkpoints import StageCheckpoints
from jaxser.config_utils import config_hash, to_dict
from jaxser.data import normalization, teacher_cache
from jaxser.data.inputs import build_inputs
from jaxser.data.pipeline import Pipeline
from jaxser.methods import common
from jaxser.models.registry import build_model
from jaxser.stage_features import augmenters, init_from, noise, segments, test_inputs


def param_count(tree) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


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


@dataclasses.dataclass
class _Run:
  """What one stage of one fold trains, tests and caches with."""

  name: str
  fold: object
  cache_path: str
  plan: stage_plan.StagePlan
  inputs: object
  pipeline: Pipeline
  train_ids: np.ndarray
  steps: dict
  new_state: object  # steps -> a fresh, replicated train state
  state: object  # new_state(steps)
  augment: object
  valid_ds: object

  @property
  def cache_meta(self) -> dict:
    return {"teacher": self.name, "hash": self.plan.hash}


class Experiment:
  """Holds what stages share across folds: corpus, inputs per kind, compiled steps, and each
  stage's plan (train settings, sources, hash), resolved and checked at construction."""

  def __init__(self, config, corpus, method, mesh, workdir: str):
    self.config, self.corpus, self.method, self.mesh = config, corpus, method, mesh
    self.workdir = workdir
    self._inputs = {}
    self._steps = {}
    self._labels = {u.id: u.label for u in corpus.utterances}
    stage_checks.check_order(config)
    # (an Experiment made only to build inputs may have no `train`, so no plans)
    self.plans = (stage_plan.resolve(config, config.stage_order) if "train" in config else {})
    stage_checks.check_losses(config, method)  # settings first, then models and files
    for name in config.stage_order:
      noise.check_normalization(config, name)
      stage_checks.check_stage(config, corpus, mesh, self.plans.get(name), name)

  # -- what a stage depends on -------------------------------------------------------------
  def plan(self, name) -> stage_plan.StagePlan:
    """Stage `name`'s plan (resolved once; stages outside `stage_order` when first asked)."""
    if name not in self.plans:
      self.plans = stage_plan.resolve(self.config, [name], self.plans)
    return self.plans[name]

  def stage_train_cfg(self, name):
    """`config.train` with the stage's own settings on top (one object per stage: copy it
    before changing it)."""
    return self.plan(name).train

  def stage_hash(self, name) -> str:
    return self.plan(name).hash

  def inputs(self, name):
    """The stage's inputs for every utterance, fold-independent ("speaker" normalisation
    applied; "train" is not: see `fold_inputs`)."""
    key = json.dumps(to_dict(self.config.stages[name].input), sort_keys=True)  # shared by stages
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

  def _augment(self, name, inputs, train_ids):
    """The stage's training-batch augmenter, or None (`stage_features.augmenters`)."""
    return augmenters.augmenter(self.config, self.corpus, name, inputs, train_ids,
                                self.plan(name).seed)

  def _needed_later(self, name, fold) -> bool:
    """Whether a stage of this fold still to run reads stage `name` (its outputs or weights):
    a checkout whose readers are all done needs no teacher cache (caches may stay local)."""
    return any(name in stage_plan.sources(self.config, s) and not self._done(
        s, os.path.join(self.workdir, fold.name, s, "result.json")) for s in self.config.stage_order)

  def _cache_ready(self, name, path, meta) -> bool:
    """Whether stage `name`'s cache at `path` holds all later stages read from it: current
    outputs, and its weights when a stage starts from them (`init_from`). A cache written
    when only outputs were asked for holds none; it is rebuilt then, from the best checkpoint,
    instead of failing when the stage that wants them starts."""
    if teacher_cache.read_if_fresh(path, meta) is None:
      return False
    return (not init_from.weights_needed_later(self.config, name) or
            os.path.exists(os.path.join(path, teacher_cache.PARAMS_FILE)))

  # -- steps, compiled once per stage and reused by every fold -----------------------------
  # (keyed by the resolved loss_cfg too: `class_weights="balanced"` holds each fold's own
  # weights, compiled into the step as constants, so folds with other counts recompile)
  def _compiled(self, name, steps_per_epoch, loss_cfg):
    key = (name, steps_per_epoch, config_hash(loss_cfg))
    if key not in self._steps:
      stage = self.config.stages[name]
      tcfg = self.stage_train_cfg(name)
      stage_checks.check_batch_sizes(tcfg, self.mesh, name)
      model = build_model(stage.model, self.corpus.num_classes)
      tx = trainer.make_optimizer(tcfg, steps_per_epoch, getattr(model, "frozen_params", None),
                                  getattr(model, "encoder_params", None))
      loss_fn = getattr(self.method, stage.loss)
      self._steps[key] = dict(
          model=model, tx=tx, cfg=tcfg,
          train=trainer.make_train_step(model, tx, loss_fn, loss_cfg, self.mesh,
                                        steps_per_epoch=steps_per_epoch),
          predict=trainer.make_predict_step(model, self.mesh,
                                            tuple(stage.get("outputs", ("logits", "embedding")))))
    return self._steps[key]

  # -- the stage itself --------------------------------------------------------------------
  def run_stage(self, name: str, fold, fold_index: int) -> dict:
    """Stage `name` in `fold`: its result, from an earlier run when its hash matches (its
    teacher cache rebuilt when missing), else trained, tested and cached now."""
    stage_dir = os.path.join(self.workdir, fold.name, name)
    result_path = os.path.join(stage_dir, "result.json")
    done = self._done(name, result_path)
    if done and (not self._needed_later(name, fold) or self._cache_ready(
        name, self._cache_path(fold, name), {"teacher": name, "hash": self.stage_hash(name)})):
      _say(f"{fold.name} {name}: done earlier, UA {done['test']['ua']:.3f}")
      return done
    start = time.time()
    run = self._prepare(name, fold, fold_index)
    stale = done is None and os.path.exists(result_path)
    distributed.barrier(f"{fold.name} {name}: read")  # every process read; now process 0 writes
    if stale and distributed.is_main():  # a result of another config of this stage; its
      os.remove(result_path)  # checkpoints are too (else a resume would discard its own)
    ckpts = StageCheckpoints(os.path.join(stage_dir, "checkpoints"), run.plan.hash, discard=stale)
    earlier = None
    if done is not None and not ckpts.has_best():  # checkpoints stay local, results are shared
      _say(f"{fold.name} {name}: no checkpoint to rebuild its teacher cache from; training again")
      earlier, done = done, None
    best, best_meta, meta, refit = self._train(run, ckpts, stage_dir, fit=done is None)
    if self._needed_later(name, fold):
      self._cache_outputs(run, best, best_meta)
    if done is not None:
      _say(f"{fold.name} {name}: teacher cache rebuilt from the best checkpoint")
      return done
    result = self._result(run, best, best_meta, meta, refit, start)
    if earlier is not None and earlier["test"] == result["test"]:
      # Trained again only for its cache: the recorded result (and its time) stays.
      _say(f"{fold.name} {name}: trained again, test metrics as recorded in its result.json")
      return earlier
    if earlier is not None:
      _say(f"{fold.name} {name}: trained again, test UA {result['test']['ua']:.4f} where its "
           f"result.json had {earlier['test']['ua']:.4f} (not deterministic here?); rewritten")
    if distributed.is_main():
      io_utils.write_json(result_path, result)
    _say(f"{fold.name} {name}: test UA {result['test']['ua']:.3f} WA {result['test']['wa']:.3f} "
          f"(best epoch {result['best_epoch'] + 1}, {result['seconds']} s)")
    return result

  def finished_result(self, name: str, fold) -> dict | None:
    """Stage `name`'s recorded result in `fold` when it is of this config, else None."""
    return self._done(name, os.path.join(self.workdir, fold.name, name, "result.json"))

  def _cache_path(self, fold, name) -> str:
    return os.path.join(self.workdir, fold.name, "cache", name)

  def _done(self, name, result_path):
    """The stage's result from an earlier run, or None (none there, or of another hash)."""
    if not os.path.exists(result_path):
      return None
    done = io_utils.read_json(result_path)
    return done if done.get("hash") == self.stage_hash(name) else None

  def _teacher_caches(self, name, fold) -> dict:
    """{teacher: cache} of the stage's teachers in `fold`, each written under its hash."""
    caches = {}
    for t in self.config.stages[name].get("teachers", ()):
      caches[t] = teacher_cache.read_if_fresh(self._cache_path(fold, t),
                                              {"teacher": t, "hash": self.stage_hash(t)})
      if caches[t] is None:
        raise RuntimeError(f"teacher cache of {t!r} for {fold.name} is missing or stale")
    return caches

  def _prepare(self, name, fold, fold_index) -> _Run:
    """The stage's inputs, teacher caches, compiled steps, augmenter and validation data."""
    caches = self._teacher_caches(name, fold)
    inputs = self.fold_inputs(name, fold)
    pipeline = Pipeline(inputs, caches)
    plan = self.plan(name)
    train_ids = inputs.example_ids(fold.train, train=True)
    steps_per_epoch = len(inputs.epoch_ids(train_ids, plan.seed, 0)) // plan.train.batch_size
    steps = self._compiled(name, steps_per_epoch, self._loss_cfg(name, inputs, train_ids))
    rng = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(plan.seed), fold_index),
                             zlib.crc32(name.encode()))
    fold_dir = os.path.join(self.workdir, fold.name)
    start = init_from.source(self.config.stages[name])
    new_state = lambda steps: sharding.put_replicated(trainer.create_state(
        steps["model"], {"x": inputs.x[:1], "length": inputs.length[:1],
                         "fields": {k: v[:1] for k, v in (inputs.fields or {}).items()}},
        steps["tx"], rng,
        init_from.init_variables(self.config, name, steps["model"], fold_dir,
                                 self.stage_hash(start) if start else "")), self.mesh)
    valid_ds = noise.valid_dataset(self.config, self.corpus, name, inputs, fold, train_ids,
                                   plan.train.eval_batch_size)
    if valid_ds is None:
      valid_ds = pipeline.dataset(inputs.example_ids(fold.valid, train=False),
                                  plan.train.eval_batch_size, train=False)
    return _Run(name=name, fold=fold, cache_path=self._cache_path(fold, name), plan=plan,
                inputs=inputs, pipeline=pipeline, train_ids=train_ids, steps=steps,
                new_state=new_state, state=new_state(steps),
                augment=self._augment(name, inputs, train_ids), valid_ds=valid_ds)

  def _fit(self, run, state, steps, ids, tcfg, ckpts, writer, desc) -> dict:
    """`trainer.fit` of `state` on examples `ids`, validated on the fold's validation set."""
    seed = run.plan.seed
    return trainer.fit(
        state=state, train_step=steps["train"], predict_step=steps["predict"],
        train_data=lambda e: run.pipeline.dataset(run.inputs.epoch_ids(ids, seed, e),
                                                  tcfg.batch_size, train=True, seed=seed,
                                                  epoch=e, augment=run.augment),
        valid_data=run.valid_ds, valid_labels=self._label_array(run.fold.valid),
        valid_groups=segments.groups(run.inputs, run.fold.valid),
        num_classes=self.corpus.num_classes, cfg=tcfg,
        steps_per_epoch=len(run.inputs.epoch_ids(ids, seed, 0)) // tcfg.batch_size,
        ckpts=ckpts, writer=writer, desc=desc)

  def _label_array(self, utt_ids) -> np.ndarray:
    return np.asarray([self._labels[i] for i in utt_ids], np.int32)

  def _train(self, run, ckpts, stage_dir, fit: bool):
    """(best state, its checkpoint meta, fit meta or None, refit info or None): the stage
    trained (when `fit`; else its best checkpoint restored) and refit when asked."""
    writer = metric_writers.create_default_writer(
        os.path.join(self.workdir, "logs", run.fold.name, run.name),
        just_logging=not distributed.is_main(), asynchronous=False)
    state = run.state
    try:
      meta = (self._fit(run, state, run.steps, run.train_ids, run.plan.train, ckpts, writer,
                        f"{run.fold.name} {run.name}") if fit else None)
      best, best_meta = ckpts.restore_best(state)
      refit = None
      if run.plan.train.get("refit", False):
        # What the refit brings, on one initialisation: the selected model's test metrics.
        selected = self._evaluate(run, best, run.fold.test)["metrics"]
        best, refit = self._refit(run, best_meta["epoch"] + 1, StageCheckpoints(
            os.path.join(stage_dir, "checkpoints_refit"), run.plan.hash))
        refit["selected_test"] = {m: selected[m] for m in ("ua", "wa")}
    finally:
      ckpts.close()
      writer.close()
    return best, best_meta, meta, refit

  def _refit(self, run, epochs, ckpts):
    """(state, info): the stage trained afresh on its training and validation examples for the
    `epochs` chosen on validation (`config.train.refit`), with the selection run's settings;
    a `warmup_cosine` schedule spans the refit's epochs (it reaches 0 on the last).

    The validation speakers then train too, so the epoch is fixed, not chosen again: the
    last one is kept (no plateau or early stopping). Resumable from its own checkpoints.
    Inputs stay as the selection run had them: with `input.normalization="train"`, standardised
    by the training speakers' statistics alone (the validation speakers' are not added).
    """
    tcfg = run.plan.train.copy_and_resolve_references()
    with tcfg.unlocked():
      tcfg.update(dict(epochs=epochs, select="last", plateau=dict(patience=0),
                       early_stopping=dict(patience=0)))
    fold = run.fold
    ids = run.inputs.example_ids(list(fold.train) + list(fold.valid), train=True)
    steps_per_epoch = len(run.inputs.epoch_ids(ids, run.plan.seed, 0)) // tcfg.batch_size
    steps = self._compiled(run.name, steps_per_epoch, self._loss_cfg(run.name, run.inputs, ids))
    try:
      meta = self._fit(run, run.new_state(steps), steps, ids, tcfg, ckpts, None,
                       f"{fold.name} {run.name} refit")
      state, _ = ckpts.restore_best(run.new_state(steps))
    finally:
      ckpts.close()
    return state, {"epochs": epochs, "examples": len(ids), "seconds": round(meta["seconds"], 1)}

  def _cache_outputs(self, run, best, best_meta) -> None:
    """Writes the stage's outputs for every example of the fold a later stage may read (and
    its weights when a later stage starts from them) to its teacher cache."""
    ids = segments.cache_ids(run.inputs, run.fold, run.train_ids)
    outs = trainer.predict_batches(run.steps["predict"], best, run.pipeline.dataset(
        ids, run.plan.train.eval_batch_size, train=False))
    _write_cache(run.cache_path, ids, outs, {**run.cache_meta, "best_epoch": best_meta["epoch"]},
                 fp16=bool(self.config.stages[run.name].get("cache_fp16", False)),
                 params=(best.params if init_from.weights_needed_later(self.config, run.name)
                         else None))

  def _evaluate(self, run, state, utt_ids, dataset=None) -> dict:
    """`trainer.evaluate` of `state` on utterances `utt_ids` (their clean examples unless
    `dataset` is given)."""
    if dataset is None:
      dataset = run.pipeline.dataset(run.inputs.example_ids(utt_ids, train=False),
                                     run.plan.train.eval_batch_size, train=False)
    return trainer.evaluate(run.steps["predict"], state, dataset, self._label_array(utt_ids),
                            self.corpus.num_classes, segments.groups(run.inputs, utt_ids))

  def _result(self, run, best, best_meta, meta, refit, start: float) -> dict:
    """The stage's result.json: test metrics (clean, and on the noisy test grid), the fit to
    its own training utterances, the best epoch, the training history and times."""
    test = self._evaluate(run, best, run.fold.test)
    # How well the tested model fits its own training utterances (clean, as evaluated).
    fit = self._evaluate(run, best, run.fold.train)["metrics"]
    seconds = time.time() - start  # (the noisy test grid not included)
    noisy = noise.test_grid(self.config, self.corpus, run.name, run.inputs, run.fold,
                            run.train_ids, run.plan.train.eval_batch_size,
                            lambda ds: self._evaluate(run, best, run.fold.test, ds)["metrics"])
    return {
        "stage": run.name, "fold": run.fold.name, "hash": run.plan.hash,
        "test": test["metrics"], "valid": best_meta["valid"], "best_epoch": best_meta["epoch"],
        "train_fit": {m: fit[m] for m in ("ua", "wa", "loss")},
        "epochs_run": meta["epoch"] + 1, "params": param_count(best.params),
        "history": meta["history"], "seconds": round(seconds, 1),
        "train_seconds": round(meta["seconds"] + (refit or {}).get("seconds", 0.0), 1),
        **({"refit": refit} if refit else {}),
        "predictions": {"ids": list(run.fold.test),
                        "pred": test["outputs"]["logits"].argmax(1).tolist()},
        "noisy": noisy,
        **test_inputs.results(self.config, self.corpus, run, lambda ds: self._evaluate(
            run, best, run.fold.test, ds)["metrics"]),
    }
