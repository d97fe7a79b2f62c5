"""Input pipeline vs LiteCNN train step on EmoDB: batches per second of each, and their ratio.

    python scripts/bench_pipeline.py [--emodb ../shared/data/emodb] [--batch 32] [--steps 20]

The pipeline joins 1 s waveforms with a teacher cache (logits + embeddings) by utterance id,
as a KD student stage does; the step is the paper-sized LiteCNN's jitted KD train step.
"""

import argparse
import os
import tempfile
import time

import jax
import ml_collections
import numpy as np

from jaxser import sharding, trainer
from jaxser.data import teacher_cache
from jaxser.data.inputs import build_inputs
from jaxser.data.pipeline import Pipeline
from jaxser.data.registry import load_corpus
from jaxser.methods import litecnn_kd
from jaxser.models.litecnn import LiteCNN

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--emodb", default=os.path.join(ROOT, "..", "shared", "data", "emodb"))
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--steps", type=int, default=20)
  args = p.parse_args()

  corpus = load_corpus(dict(name="emodb", manual_dir=args.emodb, sample_rate=16000))
  inputs = build_inputs(corpus, ml_collections.ConfigDict(dict(kind="waveform", max_seconds=1.0)))
  ids = inputs.ids.tolist()
  rng = np.random.default_rng(0)
  with tempfile.TemporaryDirectory() as tmp:
    teacher_cache.write(os.path.join(tmp, "t"), ids,
                        {"logits": rng.standard_normal((len(ids), 7)).astype(np.float32),
                         "embedding": rng.standard_normal((len(ids), 128)).astype(np.float32)},
                        {"teacher": "t"})
    pipe = Pipeline(inputs, {"t": teacher_cache.read(os.path.join(tmp, "t"))})
    batches, start, epoch = 0, time.perf_counter(), 0
    while batches < 200:
      for _ in pipe.dataset(ids, args.batch, train=True, seed=0, epoch=epoch).as_numpy_iterator():
        batches += 1
      epoch += 1
    pipe_rate = batches / (time.perf_counter() - start)

    batch = next(pipe.dataset(ids, args.batch, train=True).as_numpy_iterator())
  model = LiteCNN(num_classes=7)
  cfg = ml_collections.ConfigDict(dict(optimizer="adam", learning_rate=1e-4, schedule="constant",
                                       epochs=1))
  mesh = sharding.make_mesh()
  tx = trainer.make_optimizer(cfg, 10)
  state = sharding.put_replicated(trainer.create_state(model, batch, tx, jax.random.PRNGKey(0)),
                                  mesh)
  step = trainer.make_train_step(model, tx, litecnn_kd.kd, ml_collections.ConfigDict(
      dict(teacher="t", alpha=0.5, temperature=2.0)), mesh)
  state, m = step(state, batch)
  jax.block_until_ready(m)
  start = time.perf_counter()
  for _ in range(args.steps):
    state, m = step(state, batch)
  jax.block_until_ready(m)
  step_rate = args.steps / (time.perf_counter() - start)
  print(f"EmoDB, batch {args.batch}, 1 s waveforms + teacher logits/embeddings:")
  print(f"  pipeline   {pipe_rate:8.1f} batches/s ({batches} batches)")
  print(f"  train step {step_rate:8.2f} batches/s (LiteCNN KD, {args.steps} steps)")
  print(f"  ratio      {pipe_rate / step_rate:8.1f}x")


if __name__ == "__main__":
  main()
