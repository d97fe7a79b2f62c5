"""A few train steps and one evaluation of a tiny KD student, printed as JSON.

    python tests/distributed_steps.py                       # one process
    python tests/distributed_steps.py --coordinator_address localhost:12355 \
      --num_processes 2 --process_id 0                      # (and 1): two processes

Run in subprocesses by test_distributed.py: XLA_FLAGS sets each process's fake CPU
devices before JAX starts. Every process builds the same global batches and feeds its rows.
"""

import argparse
import json

import jax
import ml_collections
import numpy as np

from jaxser import distributed, sharding, trainer
from jaxser.methods import litecnn_kd
from jaxser.models.litecnn import LiteCNN

BATCH, SAMPLES, CLASSES, STEPS, EVAL = 16, 4000, 4, 6, 20


def _batches(rng):
  return [{
      "x": rng.standard_normal((BATCH, SAMPLES)).astype(np.float32),
      "length": rng.integers(2000, SAMPLES + 1, BATCH).astype(np.int32),
      "label": rng.integers(0, CLASSES, BATCH).astype(np.int32),
      "mask": np.ones(BATCH, np.float32),
      "teacher": {"t": {"logits": rng.standard_normal((BATCH, CLASSES)).astype(np.float32)}},
  } for _ in range(STEPS)]


class _EvalData:
  """EVAL clips in batches of 8, the last one padded with masked rows as the eval pipeline
  pads it (`as_numpy_iterator`, as `trainer.evaluate` reads a tf.data dataset; no TF import)."""

  def __init__(self, rng):
    pad = -EVAL % 8
    self.labels = rng.integers(0, CLASSES, EVAL).astype(np.int32)
    self.arrays = {
        "x": np.pad(rng.standard_normal((EVAL, SAMPLES)).astype(np.float32), ((0, pad), (0, 0))),
        "length": np.pad(rng.integers(2000, SAMPLES + 1, EVAL).astype(np.int32), (0, pad),
                         constant_values=SAMPLES),
        "label": np.pad(self.labels, (0, pad)),
        "mask": np.pad(np.ones(EVAL, np.float32), (0, pad))}

  def as_numpy_iterator(self):
    for i in range(0, len(self.arrays["mask"]), 8):
      yield {k: v[i:i + 8] for k, v in self.arrays.items()}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--coordinator_address")
  parser.add_argument("--num_processes", type=int)
  parser.add_argument("--process_id", type=int)
  args = parser.parse_args()
  distributed.initialize(args.coordinator_address, args.num_processes, args.process_id)
  rng = np.random.default_rng(0)
  model = LiteCNN(num_classes=CLASSES, stem_features=8, block_features=(8, 16, 16), hidden=16,
                  pool="masked_mean")
  # SGD, not Adam: Adam's first update is lr * sign(g), which flips for a gradient entry
  # within rounding of zero (see sharded_steps.py).
  cfg = ml_collections.ConfigDict(dict(optimizer="sgd", momentum=0.9, learning_rate=0.01,
                                       schedule="constant", epochs=1))
  loss_cfg = ml_collections.ConfigDict(dict(teacher="t", alpha=0.5, temperature=2.0))
  mesh = sharding.make_mesh()
  tx = trainer.make_optimizer(cfg, STEPS)
  batches = _batches(rng)
  state = trainer.create_state(model, batches[0], tx, jax.random.PRNGKey(0))
  state = sharding.put_replicated(state, mesh)
  step = trainer.make_train_step(model, tx, litecnn_kd.kd, loss_cfg, mesh)
  losses = []
  for b in batches:
    state, m = step(state, b)
    losses.append(float(m["loss"]))
  data = _EvalData(rng)
  out = trainer.evaluate(trainer.make_predict_step(model, mesh), state, data, data.labels,
                         CLASSES)
  print(json.dumps({"process": jax.process_index(), "processes": jax.process_count(),
                    "devices": jax.device_count(), "local_devices": jax.local_device_count(),
                    "losses": losses, "valid_loss": out["metrics"]["loss"],
                    "logits": out["outputs"]["logits"].tolist()}))


if __name__ == "__main__":
  main()
