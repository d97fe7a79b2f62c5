"""Runs a few jitted train steps of a tiny KD student and prints the losses as JSON.

Executed in a subprocess by test_trainer.py, so that XLA_FLAGS can set the
number of fake CPU devices before JAX starts.
"""

import json

import jax
import ml_collections
import numpy as np

from jaxser import sharding, trainer
from jaxser.methods import litecnn_kd
from jaxser.models.litecnn import LiteCNN


BATCH, SAMPLES, CLASSES, STEPS = 16, 4000, 4, 6


def batches(rng, n: int = STEPS):
  """`n` training batches of random clips with teacher logits."""
  return [{
      "x": rng.standard_normal((BATCH, SAMPLES)).astype(np.float32),
      "length": rng.integers(2000, SAMPLES + 1, BATCH).astype(np.int32),
      "label": rng.integers(0, CLASSES, BATCH).astype(np.int32),
      "mask": np.ones(BATCH, np.float32),
      "teacher": {"t": {"logits": rng.standard_normal((BATCH, CLASSES)).astype(np.float32)}},
  } for _ in range(n)]


def build(rng):
  """(model, mesh, replicated state, train step, batches) of the tiny KD student."""
  model = LiteCNN(num_classes=CLASSES, stem_features=8, block_features=(8, 16, 16), hidden=16,
                  pool="masked_mean")
  # SGD, not Adam: Adam's first update is lr * sign(g), so a gradient entry within rounding
  # noise of zero flips by 2 * lr when the reduction order changes. That discontinuity is
  # Adam's, not the sharding's; with SGD the losses must agree to rounding.
  cfg = ml_collections.ConfigDict(dict(optimizer="sgd", momentum=0.9, learning_rate=0.01,
                                       schedule="constant", epochs=1))
  loss_cfg = ml_collections.ConfigDict(dict(teacher="t", alpha=0.5, temperature=2.0))
  mesh = sharding.make_mesh()
  tx = trainer.make_optimizer(cfg, STEPS)  # one epoch of STEPS batches
  train = batches(rng)
  state = trainer.create_state(model, train[0], tx, jax.random.PRNGKey(0))
  state = sharding.put_replicated(state, mesh)
  step = trainer.make_train_step(model, tx, litecnn_kd.kd, loss_cfg, mesh, steps_per_epoch=STEPS)
  return model, mesh, state, step, train


def main():
  _, _, state, step, train = build(np.random.default_rng(0))
  losses = []
  for b in train:
    state, m = step(state, b)
    losses.append(float(m["loss"]))
  print(json.dumps({"devices": jax.device_count(), "losses": losses}))


if __name__ == "__main__":
  main()
