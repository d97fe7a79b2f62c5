"""The fit loop's ReduceLROnPlateau and early stopping, on scripted validation results."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jaxser import trainer
from jaxser.errors import UserError


class _Data:
  def __init__(self, batches):
    self.batches = batches

  def as_numpy_iterator(self):
    return iter(self.batches)


class _Checkpoints:
  def __init__(self):
    self.best, self.latest = [], []

  def restore_latest(self, state):
    return None

  def save_best(self, step, state, meta):
    self.best.append(meta["epoch"])

  def save_latest(self, step, state, meta):
    self.latest.append(step)


def _run(valid_losses, plateau, early, epochs, train_losses=None):
  """Validation predicts class 0 with probability exp(-loss) on a one-example set."""
  cfg = ml_collections.ConfigDict(dict(optimizer="adam", learning_rate=1e-3, schedule="constant",
                                       epochs=epochs, select="loss", plateau=plateau,
                                       early_stopping=early))
  tx = trainer.make_optimizer(cfg, 1)
  params = {"w": jnp.zeros(2)}
  state = trainer.TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats={},
                             opt_state=tx.init(params), rng=jax.random.PRNGKey(0))
  epoch = {"n": 0}
  scales = []

  def train_step(state, batch):
    scales.append(float(optax.tree_utils.tree_get(state.opt_state, "step_size")))
    loss = 0.0 if train_losses is None else train_losses[int(state.step)]
    return state.replace(step=state.step + 1), {"loss": jnp.asarray(loss, jnp.float32)}

  def predict_step(state, batch):
    p = np.exp(-valid_losses[epoch["n"]])
    epoch["n"] += 1
    with np.errstate(divide="ignore"):  # an infinite validation loss is scripted on purpose
      return {"logits": np.log(np.array([[p, 1 - p]], np.float32))}

  ckpts = _Checkpoints()
  meta = trainer.fit(state=state, train_step=train_step, predict_step=predict_step,
                     train_data=lambda e: _Data([{}]),
                     valid_data=_Data([{"mask": np.ones(1, np.float32)}]),
                     valid_labels=np.zeros(1, np.int32), num_classes=2, cfg=cfg,
                     steps_per_epoch=1, ckpts=ckpts)
  return meta, scales, ckpts


def test_plateau_halves_the_learning_rate_after_patience():
  losses = [1.0, 0.5, 0.6, 0.6, 0.6, 0.6, 0.4, 0.45, 0.45]
  meta, scales, ckpts = _run(losses, dict(patience=2, factor=0.5, monitor="loss"),
                             dict(patience=0), epochs=len(losses))
  # 0.5 at epoch 1; epochs 2, 3 wait, epoch 4 exceeds patience 2 -> scale 0.5 from epoch 5.
  assert scales == [1.0] * 5 + [0.5] * 4
  assert meta["lr_scale"] == 0.5
  assert ckpts.best == [0, 1, 6]
  assert len(ckpts.latest) == len(losses)


def test_early_stopping_stops_after_patience_epochs_without_improvement():
  losses = [1.0, 0.5, 0.6, 0.7, 0.8, 0.2, 0.1]
  meta, scales, ckpts = _run(losses, dict(patience=0), dict(patience=3), epochs=len(losses))
  assert meta["stopped"] and meta["epoch"] == 4 and meta["best_epoch"] == 1
  assert len(scales) == 5 and ckpts.best == [0, 1]


@pytest.mark.parametrize("train_losses,valid_losses,what", [
    ([0.5, float("nan"), 0.4], [1.0, 0.9, 0.8], "epoch 2: training loss is nan"),
    ([0.5, 0.4, 0.3], [1.0, float("inf"), 0.8], "epoch 2: validation loss is inf")])
def test_a_non_finite_loss_stops_the_stage_at_once_naming_the_epoch(train_losses, valid_losses,
                                                                     what):
  with pytest.raises(UserError, match=what) as err:
    _run(valid_losses, dict(patience=0), dict(patience=0), epochs=3, train_losses=train_losses)
  assert "NaN/inf" in str(err.value)


def test_early_stopping_watches_its_own_monitor_not_select():
  """select="loss" keeps improving; early stopping on UA (1 once class 0 wins, p > 0.5) stops
  2 epochs after UA's first 1, while the best checkpoint still follows the loss."""
  losses = [1.0, 0.5, 0.4, 0.3, 0.2, 0.1]
  meta, scales, ckpts = _run(losses, dict(patience=0), dict(patience=2, monitor="ua"),
                             epochs=len(losses))
  assert [h["valid/ua"] for h in meta["history"]] == [0.0, 1.0, 1.0, 1.0]
  assert meta["stopped"] and meta["epoch"] == 3 and meta["early_epoch"] == 1
  assert meta["best_epoch"] == 3 and ckpts.best == [0, 1, 2, 3]
