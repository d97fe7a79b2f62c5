"""The generic trainer: a train state pytree, one jitted train step over any method loss,
and a fit loop with checkpoints, resume, ReduceLROnPlateau and early stopping.

A method plugs in through `loss_fn(student_out, teacher_out, batch, cfg) -> (loss, metrics)`
(`batch["epoch"]`: the 0-based epoch being trained, for losses with a schedule); nothing here
knows which paper it runs.
"""

from __future__ import annotations

import functools
import math
import time
from typing import Any, Callable, Optional

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from jaxser import distributed
from jaxser import metrics as metrics_lib
from jaxser import sharding
from jaxser.errors import UserError
from jaxser.features import segments

LossFn = Callable[..., tuple[jax.Array, dict]]


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  rng: jax.Array


def _lr_schedule(cfg, steps_per_epoch: int):
  lr = cfg.learning_rate
  if cfg.schedule == "constant":
    return lr
  if cfg.schedule == "warmup_cosine":
    total = max(cfg.epochs * steps_per_epoch, 1)
    warmup = int(cfg.get("warmup_epochs", 0) * steps_per_epoch)
    return optax.warmup_cosine_decay_schedule(0.0, lr, max(warmup, 1), max(total, warmup + 1))
  raise ValueError(f"config.train.schedule={cfg.schedule!r} is unknown; "
                   "choose 'constant' or 'warmup_cosine'")


def make_optimizer(cfg, steps_per_epoch: int, frozen=None,
                   encoder=None) -> optax.GradientTransformation:
  """Optimizer of `config.train`, ending in an injected `step_size` the plateau rule scales.

  `frozen(params) -> bool tree` (a model's `frozen_params`) marks weights that get no update
  at all, weight decay included, as PyTorch skips parameters with requires_grad=False.
  `encoder(params) -> bool tree` (a model's `encoder_params`) marks the pretrained weights
  that `train.encoder_learning_rate`, when set, steps at instead of `learning_rate`.
  """
  lr = _lr_schedule(cfg, steps_per_epoch)
  wd = cfg.get("weight_decay", 0.0)
  parts = []
  if cfg.get("grad_clip_norm", 0.0):
    parts.append(optax.clip_by_global_norm(cfg.grad_clip_norm))
  if cfg.optimizer == "adam":
    # PyTorch Adam's weight_decay is an L2 term added to the gradient.
    if wd:
      parts.append(optax.add_decayed_weights(wd))
    parts.append(optax.adam(lr))
  elif cfg.optimizer == "adamw":
    parts.append(optax.adamw(lr, weight_decay=wd))
  elif cfg.optimizer == "sgd":
    parts.append(optax.sgd(lr, momentum=cfg.get("momentum", 0.9)))
  else:
    raise ValueError(f"config.train.optimizer={cfg.optimizer!r} is unknown; "
                     "choose 'adam', 'adamw' or 'sgd'")
  parts.append(optax.inject_hyperparams(optax.scale)(step_size=1.0))
  tx = optax.chain(*parts)
  if frozen is not None:
    labels = lambda params: jax.tree.map(lambda f: "frozen" if f else "trained", frozen(params))
    tx = optax.multi_transform({"trained": tx, "frozen": optax.set_to_zero()}, labels)
  if cfg.get("encoder_learning_rate"):
    if encoder is None:
      raise ValueError("config.train.encoder_learning_rate is set, but the stage's model has no "
                       "pretrained encoder to give it to; remove the setting from that stage")
    tx = optax.chain(tx, _scale_encoder(encoder, cfg.encoder_learning_rate / cfg.learning_rate))
  if cfg.get("grad_accum_steps", 1) > 1:
    tx = optax.MultiSteps(tx, every_k_schedule=cfg.grad_accum_steps)
  return tx


def _scale_encoder(encoder, ratio: float) -> optax.GradientTransformation:
  """Multiplies the updates of the weights `encoder` marks by `ratio`: for Adam(W) and SGD
  the same step as a PyTorch parameter group at ratio × the learning rate (decay included),
  under the same schedule and the same global gradient clipping."""

  def update(updates, state, params=None):
    del params
    return jax.tree.map(lambda u, e: u * ratio if e else u, updates, encoder(updates)), state

  return optax.GradientTransformation(lambda _: optax.EmptyState(), update)


def set_lr_scale(opt_state, value: float):
  return optax.tree_utils.tree_set(opt_state, step_size=jnp.asarray(value, jnp.float32))


def _variables(params, batch_stats):
  return {"params": params, **({"batch_stats": batch_stats} if batch_stats else {})}


def create_state(model: nn.Module, batch: dict, tx, rng, init_variables=None) -> TrainState:
  """Initialises params and batch stats from a host batch's shapes (and a checkpoint, if the
  model has `load_pretrained`); `init_variables(variables) -> variables` then sets any
  (e.g. copies a teacher's layers) before the optimizer state is made."""
  init_rng, state_rng = jax.random.split(rng)
  variables = jax.jit(functools.partial(model.init, train=False))(
      {"params": init_rng, "dropout": init_rng}, batch["x"], batch["length"],
      **batch.get("fields", {}))
  # A model that starts from a checkpoint (e.g. a HuggingFace encoder) swaps it in here:
  # `load_pretrained(variables) -> variables`, on the host, once per stage.
  if hasattr(model, "load_pretrained"):
    variables = model.load_pretrained(flax.core.unfreeze(variables))
  if init_variables is not None:
    variables = init_variables(flax.core.unfreeze(variables))
  params = variables["params"]
  batch_stats = variables.get("batch_stats", {})
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                    opt_state=tx.init(params), rng=state_rng)


def default_teacher_fn(batch):
  """Teacher outputs read from the cache; an online teacher replaces this function."""
  return batch.get("teacher")


def _on_host_batches(jitted, mesh):
  """`(state, host_batch) -> jitted(state, batch on the mesh)`; `.jitted` is the jitted function
  (e.g. for XLA's cost analysis of the step)."""

  def call(state, host_batch):
    return jitted(state, sharding.put_batch(host_batch, mesh))

  call.jitted = jitted
  return call


def make_train_step(model: nn.Module, tx, loss_fn: LossFn, loss_cfg, mesh, *,
                    steps_per_epoch: int, teacher_fn: Callable = default_teacher_fn):
  """`(state, host_batch) -> (state, metrics)`, jitted with the batch split on the `data` axis
  and the state replicated; the old state's buffers are donated. The loss sees the epoch
  being trained as `batch["epoch"]` (state.step // steps_per_epoch)."""
  if steps_per_epoch < 1:
    raise ValueError(f"make_train_step: steps_per_epoch={steps_per_epoch}; must be >= 1")

  def step(state: TrainState, batch):
    rng = jax.random.fold_in(state.rng, state.step)

    def compute(params):
      out, updates = model.apply(_variables(params, state.batch_stats), batch["x"],
                                 batch["length"], **batch.get("fields", {}), train=True,
                                 rngs={"dropout": rng}, mutable=["batch_stats"])
      epoch = state.step // steps_per_epoch
      loss, metrics = loss_fn(out, teacher_fn(batch), {**batch, "epoch": epoch}, loss_cfg)
      return loss, (metrics, updates)

    (loss, (metrics, updates)), grads = jax.value_and_grad(compute, has_aux=True)(state.params)
    deltas, opt_state = tx.update(grads, state.opt_state, state.params)
    new = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, deltas),
                        batch_stats=updates.get("batch_stats", state.batch_stats),
                        opt_state=opt_state)
    return new, {"loss": loss, **metrics}

  repl, data = sharding.replicated(mesh), sharding.data_sharding(mesh)
  jitted = jax.jit(step, in_shardings=(repl, data), out_shardings=(repl, repl),
                   donate_argnums=(0,))
  return _on_host_batches(jitted, mesh)


def make_predict_step(model: nn.Module, mesh, keys=("logits", "embedding")):
  """`(state, host_batch) -> {key: array}` in inference mode, jitted like the train step; with
  several processes the outputs are copied to every process (`sharding.output_sharding`)."""

  def predict(state: TrainState, batch):
    out = model.apply(_variables(state.params, state.batch_stats), batch["x"], batch["length"],
                      **batch.get("fields", {}), train=False)
    return {k: out[k] for k in keys if k in out}

  jitted = jax.jit(predict, in_shardings=(sharding.replicated(mesh), sharding.data_sharding(mesh)),
                   out_shardings=sharding.output_sharding(mesh))
  return _on_host_batches(jitted, mesh)


def predict_batches(predict_step, state, dataset):
  """Yields `predict_step`'s outputs on the host, batch by batch, without padded rows (mask 0).

  One batch stays in flight while the previous one is copied to the host, so outputs are
  never all held at once (teacher hidden states can outgrow memory).
  """
  pending = None
  for batch in dataset.as_numpy_iterator():
    current = (predict_step(state, batch), batch["mask"] > 0)
    if pending is not None:
      yield _host_rows(*pending)
    pending = current
  if pending is not None:
    yield _host_rows(*pending)


def _host_rows(outputs, keep):
  return {k: np.asarray(v)[keep] for k, v in jax.device_get(outputs).items()}


def predict(predict_step, state, dataset) -> dict[str, np.ndarray]:
  """Runs `predict_step` over an eval dataset; padded rows (mask 0) are dropped."""
  chunks = list(predict_batches(predict_step, state, dataset))
  return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def evaluate(predict_step, state, dataset, labels: np.ndarray, num_classes: int,
             groups=None) -> dict:
  """Outputs and metrics (UA, WA, F1, confusion, CE loss) of `state` on `dataset`.

  `groups` = (utterance index of each example, number of utterances, how) scores
  utterances from their segments; `labels` are then per utterance.
  """
  out = predict(predict_step, state, dataset)
  if groups is not None:
    out["segment_logits"] = out.pop("logits")
    out["logits"] = segments.utterance_logits(out["segment_logits"], *groups)
  logits = out["logits"].astype(np.float64)
  logp = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
  m = metrics_lib.classification_metrics(labels, logits.argmax(1), num_classes)
  m["loss"] = float(-logp[np.arange(len(labels)), labels].mean())
  return {"outputs": out, "metrics": m}


# Validation metrics logged per epoch and watchable by `select` and the schedule rules.
MONITORS = ("loss",) + metrics_lib.NAMES


def check_monitors(cfg) -> None:
  """ValueError naming the setting when `select` or a `monitor` names no validation metric."""
  settings = {"select": (cfg.get("select", "ua"), MONITORS + ("last",))}
  for rule in ("plateau", "early_stopping"):
    if (cfg.get(rule) or {}).get("monitor") is not None:
      settings[f"{rule}.monitor"] = (cfg[rule]["monitor"], MONITORS)
  for key, (value, allowed) in settings.items():
    if value not in allowed:
      raise ValueError(f"config.train.{key}={value!r} is unknown; choose one of {allowed}")
  early = cfg.get("early_stopping") or {}
  if early.get("patience", 0) and early.get("monitor") is None and settings["select"][0] == "last":
    raise ValueError("config.train.early_stopping watches `select` unless it names a monitor, "
                     "and select='last' is no validation metric: set early_stopping.monitor "
                     f"(one of {MONITORS}) or early_stopping.patience=0")


def _monitor_value(m: dict, name: str) -> float:
  """Higher is better: loss is negated."""
  return -m["loss"] if name == "loss" else m[name]


def _check_finite(value: float, what: str) -> None:
  """Stops the stage at once on a NaN/inf loss (no epoch after it could be selected)."""
  if not math.isfinite(value):
    raise UserError(f"{what} is {value}: the stage stopped. Likely an input with NaN/inf "
                    "values (e.g. features of a truncated, empty or silent audio file; check "
                    "the stage's input settings and the corpus) or a learning rate too high "
                    "(config.train.learning_rate)")


def fit(*, state: TrainState, train_step, predict_step, train_data: Callable[[int], Any],
        valid_data, valid_labels, num_classes: int, cfg, valid_groups=None, steps_per_epoch: int, ckpts,
        writer=None, desc: str = "", on_epoch_end: Optional[Callable] = None) -> dict:
  """Trains for `cfg.epochs`, resuming from the latest checkpoint; returns the loop meta.

  `train_data(epoch)` gives the epoch's dataset (its order depends only on the
  seed and epoch, so a resumed run repeats the uninterrupted one). The best
  state by `cfg.select` on validation is checkpointed for evaluation. meta['seconds']
  is the time spent in epochs (training and validation), summed over resumed runs.
  With several processes every one runs this loop (checkpoint saves are collective);
  only process 0 shows progress.
  """
  meta = {"epoch": -1, "best": -math.inf, "best_epoch": -1, "lr_scale": 1.0,
          "plateau_best": -math.inf, "plateau_wait": 0, "stopped": False, "history": [],
          "seconds": 0.0, "early_best": -math.inf, "early_epoch": -1}
  restored = ckpts.restore_latest(state)
  if restored is not None:
    state, meta = restored
    # Checkpoints written before these were recorded: early stopping then watched `select`.
    meta.setdefault("seconds", 0.0)
    meta.setdefault("early_best", meta["best"])
    meta.setdefault("early_epoch", meta["best_epoch"])
  select = cfg.get("select", "ua")
  for epoch in range(meta["epoch"] + 1, cfg.epochs):
    if meta["stopped"]:
      break
    epoch_start = time.time()
    state, train_m = _train_epoch(state, train_step, train_data(epoch), steps_per_epoch,
                                  f"{desc} epoch {epoch + 1}/{cfg.epochs}")
    _check_finite(train_m["loss"], f"{desc} epoch {epoch + 1}: training loss")
    valid_m = evaluate(predict_step, state, valid_data, valid_labels, num_classes,
                       valid_groups)["metrics"]
    _check_finite(valid_m["loss"], f"{desc} epoch {epoch + 1}: validation loss")
    record = {"epoch": epoch, "lr_scale": meta["lr_scale"],
              **{f"train/{k}": v for k, v in train_m.items()},
              **{f"valid/{k}": valid_m[k] for k in MONITORS}}
    meta["history"].append(record)
    if writer is not None:
      writer.write_scalars(int(state.step), {k: v for k, v in record.items() if k != "epoch"})
    # "last": the epoch count was fixed beforehand (a refit), so the newest state is kept.
    score = epoch if select == "last" else _monitor_value(valid_m, select)
    if score > meta["best"]:
      meta.update(best=score, best_epoch=epoch)
      ckpts.save_best(int(state.step), state, {"epoch": epoch, "valid": valid_m})
    if _watch(meta, valid_m, epoch, cfg.get("plateau", {}) or {},
              cfg.get("early_stopping", {}) or {}, select):
      state = state.replace(opt_state=set_lr_scale(state.opt_state, meta["lr_scale"]))
    meta["epoch"] = epoch
    meta["seconds"] += time.time() - epoch_start
    if distributed.is_main():
      tqdm.write(f"{desc} epoch {epoch + 1}: train loss {train_m['loss']:.4f}  valid loss "
                 f"{valid_m['loss']:.4f}  UA {valid_m['ua']:.3f}  WA {valid_m['wa']:.3f}")
    ckpts.save_latest(int(state.step), state, meta)
    if on_epoch_end is not None:
      on_epoch_end(epoch)
  return meta


def _train_epoch(state, train_step, dataset, steps: int, desc: str):
  """One pass of `train_step` over `dataset` (a progress bar on process 0): (state, the
  mean of each step metric)."""
  step_metrics = []
  bar = tqdm(total=steps, leave=False, desc=desc, disable=not distributed.is_main())
  for batch in dataset.as_numpy_iterator():
    state, m = train_step(state, batch)
    # Dispatch is asynchronous: the bar counts a step once its outputs exist, one step
    # behind the newest, so its rate is the real one and the device never waits on it.
    if step_metrics:
      jax.block_until_ready(step_metrics[-1])
      bar.update()
    step_metrics.append(m)
  if step_metrics:
    jax.block_until_ready(step_metrics[-1])
    bar.update()
  bar.close()
  return state, {k: float(np.mean([float(s[k]) for s in jax.device_get(step_metrics)]))
                 for k in step_metrics[0]}


def _watch(meta, valid_m, epoch: int, plateau, early, select: str) -> bool:
  """The plateau and early-stopping rules after `epoch`, each on its own `monitor` (early
  stopping's default: `select`), kept in `meta`; True when the plateau rule cut the learning
  rate (to meta["lr_scale"])."""
  cut = False
  if plateau.get("patience", 0):
    value = _monitor_value(valid_m, plateau.get("monitor", "loss"))
    if value > meta["plateau_best"]:
      meta.update(plateau_best=value, plateau_wait=0)
    else:
      meta["plateau_wait"] += 1
      if meta["plateau_wait"] > plateau["patience"]:
        meta.update(lr_scale=meta["lr_scale"] * plateau.get("factor", 0.5), plateau_wait=0)
        cut = True
  if early.get("patience", 0):
    value = _monitor_value(valid_m, early.get("monitor", select))
    if value > meta["early_best"]:
      meta.update(early_best=value, early_epoch=epoch)
    elif epoch - meta["early_epoch"] >= early["patience"]:
      meta["stopped"] = True
  return cut
