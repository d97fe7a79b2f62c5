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
import numpy as np

import sharded_steps
from jaxser import distributed, trainer
from sharded_steps import CLASSES, SAMPLES

EVAL = 20


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
  model, mesh, state, step, batches = sharded_steps.build(rng)
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
