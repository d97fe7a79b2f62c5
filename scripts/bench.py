"""jaxser vs PyTorch in one process: train-step and batch-1 inference time per model (issue 19).

    python scripts/bench.py                          # every model, paper-sized (long: run it quiet)
    python scripts/bench.py --quick                  # tiny shapes, 1 warm-up + 2 steps: smoke run
    python scripts/bench.py --models litecnn,dkdfmh --out runs/bench

The jaxser side of each model is built as a stage builds it (registry.build_model,
trainer.make_optimizer with the model's frozen_params, trainer.create_state,
trainer.make_train_step / make_predict_step on sharding.make_mesh()); the PyTorch side is its
twin in scripts/bench_torch.py, with the same layer shapes (parameter counts must agree
within 1 %), fp32, the same optimizer and hyperparameters. Per mode (train; inference at
batch 1) the two run in alternating blocks (ABBA order), each block `--warmup` untimed and
`--steps` timed calls; the medians over all timed calls are compared. jaxser calls take host
(NumPy) batches as training does, feed the donated state back and block on every output.

Models, and the stage each comes from:
  litecnn             configs/litecnn_kd_emodb.py student_alone: LiteCNN, CE, Adam, 32 x 1 s
  dkdfmh              configs/dkdfmh_emodb.py cnn_mha: CNN+MHA, CE, Adam, 32 x 200 x 40 fbank
  hubert              w2v2_classifier, hubert-base-ls960 shape, random init, CE, AdamW, 4 x 3 s;
                      PyTorch: HF HubertForSequenceClassification of the same config
  whisper             whisper_classifier, whisper-base shape, random init, weighted layer sum,
                      CE, AdamW, 4 x 30 s padded log-mel (3000 x 80: HF takes no other length)
                      holding 3 s clips; inference: every hidden state of one padded 4 s clip
  emodistill_student  small-hubert with the heads and loss of configs/emodistill_emodb.py
                      emodistill: the student on cached teacher logits and embeddings, the EmoDistill loss, AdamW + clip, 32 x 2 s
Inference rows: batch 1 at 1 s and 4 s (whisper: the one 30 s padded clip).
--quick swaps in tiny encoder presets (tiny-hubert, tiny-whisper), small batches and the
first inference length only: a check that the script runs, not a measurement.

Also measured: the fp32 matmul peak (jnp.dot and torch.mm, 2048 x 2048); XLA's flop count
of each compiled jaxser call (cost_analysis), hence achieved GFLOP/s and % of the jnp.dot
peak; the tf.data pipeline's batches/s (jaxser.data.pipeline on synthetic arrays of EmoDB's
size, with the stage's teacher caches) beside the train step's for litecnn and dkdfmh;
os.getloadavg() before / after every block and the process CPU % (CPU time / wall / cores).
Writes <out>/bench.json (every block) and <out>/bench.md (the table), atomically.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import importlib
import os
import statistics
import sys
import tempfile
import time
from typing import Optional

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE]

import flax  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

import bench_torch  # noqa: E402
from jaxser import io_utils, profile, sharding, trainer  # noqa: E402
from jaxser.config_utils import load_config_file  # noqa: E402
from jaxser.experiment import param_count  # noqa: E402
from jaxser.stage_plan import resolve_stage_train  # noqa: E402
from jaxser.models.registry import build_model  # noqa: E402

MODELS = ("litecnn", "dkdfmh", "hubert", "whisper", "emodistill_student")
NUM_CLASSES = 7  # EmoDB
SAMPLE_RATE = 16000
FBANK_PER_SECOND = 100  # log-filterbank / log-mel frames per second (10 ms hop)
STEPS_PER_EPOCH = 13  # EmoDB: ~430 training clips per fold / 32; shapes the LR schedule only
MATMUL_N = 2048


@dataclasses.dataclass(frozen=True)
class Settings:
  """How long each side runs: per block `warmup` + `steps` calls, `blocks` blocks per side."""

  warmup: int
  steps: int
  blocks: int
  quick: bool


@dataclasses.dataclass
class Spec:
  """One benchmarked stage: model, train settings, loss, input form and shapes."""

  source: str
  model_cfg: dict
  train_cfg: ml_collections.ConfigDict
  method: str
  loss: str
  loss_cfg: ml_collections.ConfigDict
  input: str  # "waveform", "logfbank" or "whisper_mel"
  batch: int
  seconds: float  # train clip length
  infer_seconds: tuple = (1.0, 4.0)
  teachers: dict = dataclasses.field(default_factory=dict)  # cached teacher -> embedding width
  infer_model: dict = dataclasses.field(default_factory=dict)  # model settings for inference
  infer_keys: tuple = ("logits", "embedding")
  bands: int = 40
  mel_frames: int = 0
  pipeline: bool = False
  notes: tuple = ()


# ----------------------------------------------------------------------------- the stages


def _stage(config_file: str, name: str):
  """(config, stage, resolved train block) of a config file's stage, as Experiment has them."""
  config = load_config_file(os.path.join(ROOT, "configs", config_file))
  return config, config.stages[name], resolve_stage_train(config, name)


def _hf_train_cfg(batch: int, lr: float) -> ml_collections.ConfigDict:
  """AdamW fine-tuning settings for the encoders no config here fine-tunes from scratch."""
  return ml_collections.ConfigDict(dict(
      optimizer="adamw", learning_rate=lr, weight_decay=0.01, schedule="constant",
      warmup_epochs=0, grad_clip_norm=0.0, grad_accum_steps=1, epochs=1, batch_size=batch))


def litecnn_spec(quick: bool) -> Spec:
  config, stage, cfg = _stage("litecnn_kd_emodb.py", "student_alone")
  return Spec("configs/litecnn_kd_emodb.py student_alone", stage.model.to_dict(), cfg,
              config.method, stage.loss, stage.loss_cfg, "waveform",
              4 if quick else cfg.batch_size, stage.input.max_seconds, pipeline=True)


def dkdfmh_spec(quick: bool) -> Spec:
  config, stage, cfg = _stage("dkdfmh_emodb.py", "cnn_mha")
  return Spec("configs/dkdfmh_emodb.py cnn_mha", stage.model.to_dict(), cfg, config.method,
              stage.loss, stage.loss_cfg, "logfbank", 4 if quick else cfg.batch_size,
              stage.input.segment.seconds, bands=stage.input.num_filters, pipeline=True,
              notes=("dkdfmh inference rows: one input of 100 / 400 frames (the stage cuts "
                     "2 s segments; the network takes any length)",))


def hubert_spec(quick: bool) -> Spec:
  preset = "tiny-hubert" if quick else "hubert-base-ls960"
  model = dict(name="w2v2_classifier", preset=preset, projector_size=256, dropout=0.1,
               mask_padding=True)
  batch = 2 if quick else 4
  return Spec(f"w2v2_classifier {preset}, random init", model, _hf_train_cfg(batch, 5e-5),
              "common", "ce", ml_collections.ConfigDict(dict(label_smoothing=0.0)),
              "waveform", batch, 1.0 if quick else 3.0,
              notes=("hubert: HF's LayerDrop skips layers, jaxser's runs them and drops the "
                     "output; the HF twin has layerdrop 0 so both do the same work",))


def whisper_spec(quick: bool) -> Spec:
  preset = "tiny-whisper" if quick else "whisper-base"
  model = dict(name="whisper_classifier", preset=preset, layer=-1, hidden=(), dropout=0.1,
               mask_padding=False)
  batch = 2 if quick else 4
  frames = build_model(model, NUM_CLASSES).encoder_config().max_mel_frames
  return Spec(f"whisper_classifier {preset}, random init", model, _hf_train_cfg(batch, 1e-5),
              "common", "ce", ml_collections.ConfigDict(dict(label_smoothing=0.0)),
              "whisper_mel", batch, 3.0, infer_seconds=(4.0,), bands=80, mel_frames=frames,
              infer_model=dict(output_hidden_states=True), infer_keys=("logits", "hidden_states"),
              notes=(f"whisper: {frames} mel frames (30 s, Whisper's padding) on both sides, as "
                     "HF's WhisperEncoder accepts no other length; every frame attends "
                     "(mask_padding=False), pooling covers the clip's frames",))


def emodistill_spec(quick: bool) -> Spec:
  config, stage, cfg = _stage("emodistill_emodb.py", "emodistill")
  # The HuBERT-shaped student (the paper's encoder family, and the row's figures so far) with
  # the config's heads, loss and teachers; the config itself now fine-tunes Whisper-base.
  model = {k: v for k, v in stage.model.to_dict().items()
           if k not in ("checkpoint", "freeze_layers", "frontend", "layer", "standardize_layers")}
  model.update(name="emodistill_student", preset="tiny-hubert" if quick else "small-hubert")
  # One learning rate: the HuBERT twin has no pretrained encoder to give a second one.
  cfg = ml_collections.ConfigDict({**{k: v for k, v in cfg.to_dict().items()
                                      if k != "encoder_learning_rate"}, "batch_size": 32})
  lc = stage.loss_cfg
  teachers = {lc.linguistic: model["linguistic_dim"], lc.prosodic: model["prosodic_dim"]}
  return Spec(f"configs/emodistill_emodb.py emodistill ({model['preset']})", model, cfg,
              config.method, stage.loss, stage.loss_cfg, "waveform",
              4 if quick else cfg.batch_size, 1.0 if quick else stage.input.max_seconds,
              teachers={k: v for k, v in teachers.items() if k})


SPECS = {"litecnn": litecnn_spec, "dkdfmh": dkdfmh_spec, "hubert": hubert_spec,
         "whisper": whisper_spec, "emodistill_student": emodistill_spec}


def make_batch(spec: Spec, n: int, seconds: float, rng) -> dict:
  """A host batch of `n` random clips of `seconds` in the stage's input form, with labels,
  mask and (cached) teacher outputs, as the stage's pipeline yields them."""
  if spec.input == "waveform":
    x = rng.standard_normal((n, int(seconds * SAMPLE_RATE)))
    length = np.full(n, x.shape[1])
  elif spec.input == "logfbank":
    x = rng.standard_normal((n, int(seconds * FBANK_PER_SECOND), spec.bands))
    length = np.full(n, x.shape[1])
  else:  # whisper_mel: the clip's frames, then zeros to the full 30 s
    valid = int(seconds * FBANK_PER_SECOND)
    x = np.zeros((n, spec.mel_frames, spec.bands))
    x[:, :valid] = rng.standard_normal((n, valid, spec.bands))
    length = np.full(n, valid)
  batch = {"x": x.astype(np.float32), "length": length.astype(np.int32),
           "label": rng.integers(0, NUM_CLASSES, n).astype(np.int32),
           "mask": np.ones(n, np.float32)}
  if spec.teachers:
    batch["teacher"] = {t: {"logits": rng.standard_normal((n, NUM_CLASSES)).astype(np.float32),
                            "embedding": rng.standard_normal((n, d)).astype(np.float32)}
                        for t, d in spec.teachers.items()}
  return batch


def shape_text(batch: dict) -> str:
  return " × ".join(str(d) for d in batch["x"].shape)


# ----------------------------------------------------------------------------- jaxser side


class JaxTrain:
  """jaxser's train step on one host batch; the donated state is fed back on every call."""

  def __init__(self, step, state, batch):
    self.step, self.state, self.batch = step, state, batch

  def prepare(self):
    pass

  def __call__(self):
    self.state, metrics = self.step(self.state, self.batch)
    return jax.block_until_ready((self.state, metrics))


def build_jax(spec: Spec, mesh, batch: dict):
  """(model, JaxTrain, predict step) built as Experiment._compiled and new_state build them."""
  model = build_model(spec.model_cfg, NUM_CLASSES)
  tx = trainer.make_optimizer(spec.train_cfg, STEPS_PER_EPOCH,
                              getattr(model, "frozen_params", None))
  loss_fn = getattr(importlib.import_module(f"jaxser.methods.{spec.method}"), spec.loss)
  step = trainer.make_train_step(model, tx, loss_fn, spec.loss_cfg, mesh,
                                 steps_per_epoch=STEPS_PER_EPOCH)
  state = sharding.put_replicated(trainer.create_state(
      model, {"x": batch["x"][:1], "length": batch["length"][:1]}, tx, jax.random.PRNGKey(0)),
      mesh)
  infer_model = build_model({**spec.model_cfg, **spec.infer_model}, NUM_CLASSES)
  predict = trainer.make_predict_step(infer_model, mesh, spec.infer_keys)
  return model, JaxTrain(step, state, batch), predict


def xla_flops(step, *args) -> Optional[float]:
  """XLA's flop count of a trainer step's compiled function (`step.jitted`) for `args`."""
  return profile.flops(step.jitted.lower(*args).compile())


# ----------------------------------------------------------------------------- timing


def run_block(call, warmup: int, steps: int) -> dict:
  """`warmup` untimed then `steps` timed calls: per-call ms, load before / after, CPU %."""
  call.prepare()
  for _ in range(warmup):
    call()
  gc.collect()
  load_before, cpu_start, start = os.getloadavg()[0], time.process_time(), time.perf_counter()
  ms = []
  for _ in range(steps):
    t = time.perf_counter()
    call()
    ms.append(1e3 * (time.perf_counter() - t))
  wall = time.perf_counter() - start
  return {"ms": ms, "load_before": load_before, "load_after": os.getloadavg()[0],
          "cpu_pct": 100 * (time.process_time() - cpu_start) / wall / os.cpu_count()}


def compare(calls: dict, s: Settings) -> dict:
  """Alternating blocks (ABBA order) of each side; per side the median over all timed calls."""
  blocks = {k: [] for k in calls}
  names = list(calls)
  for b in range(s.blocks):
    for k in (names if b % 2 == 0 else names[::-1]):
      blocks[k].append(run_block(calls[k], s.warmup, s.steps))
  return {k: {"median_ms": statistics.median(t for blk in v for t in blk["ms"]),
              "block_median_ms": [statistics.median(blk["ms"]) for blk in v],
              "cpu_pct": statistics.mean(blk["cpu_pct"] for blk in v), "blocks": v}
          for k, v in blocks.items()}


def matmul_peak(s: Settings, n: int = MATMUL_N) -> dict:
  """GFLOP/s of an n x n fp32 matmul: jnp.dot (jitted) and torch.mm, alternating blocks."""
  rng = np.random.default_rng(0)
  a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
  dot, ja, jb = jax.jit(jnp.dot), jnp.asarray(a), jnp.asarray(b)
  ta, tb = torch.from_numpy(a), torch.from_numpy(b)
  timed = compare({"jnp.dot": bench_torch.Call(lambda: dot(ja, jb).block_until_ready()),
                   "torch.mm": bench_torch.Call(lambda: torch.mm(ta, tb))}, s)
  gflop = 2 * n ** 3 / 1e9
  return {k: {"gflops": gflop / (v["median_ms"] / 1e3), **v} for k, v in timed.items()}


# ----------------------------------------------------------------------------- pipeline


def pipeline_rate(spec: Spec, n: int, batch_size: int, min_batches: int, rng) -> float:
  """Training batches/s of jaxser's tf.data Pipeline over `n` synthetic examples of the
  stage's input shape, joined with its teacher caches."""
  from jaxser.data import teacher_cache
  from jaxser.data.inputs import InputArrays
  from jaxser.data.pipeline import Pipeline
  host = make_batch(spec, n, spec.seconds, rng)
  ids = np.asarray([f"utt{i:05d}" for i in range(n)])
  inputs = InputArrays(ids=ids, x=host["x"], length=host["length"], label=host["label"])
  with tempfile.TemporaryDirectory() as tmp:
    caches = {}
    for name, arrays in host.get("teacher", {}).items():
      teacher_cache.write(os.path.join(tmp, name), ids.tolist(), arrays, {"teacher": name})
      caches[name] = teacher_cache.read(os.path.join(tmp, name))
    pipe = Pipeline(inputs, caches)
    batches, epoch, start = 0, 0, time.perf_counter()
    while batches < min_batches:
      for _ in pipe.dataset(ids, batch_size, train=True, seed=0, epoch=epoch).as_numpy_iterator():
        batches += 1
      epoch += 1
    return batches / (time.perf_counter() - start)


# ----------------------------------------------------------------------------- one model


def check_params(name: str, jax_count: int, torch_count: int):
  """Raises unless the twins' parameter counts agree within 1 %."""
  if abs(jax_count - torch_count) > 0.01 * jax_count:
    raise AssertionError(f"{name}: jaxser has {jax_count:,} parameters, its PyTorch twin "
                         f"{torch_count:,}: more than 1 % apart; fix scripts/bench_torch.py")


def make_row(name, mode, batch, params, timed, flops, peaks) -> dict:
  """One table row: times, ratio, achieved GFLOP/s and share of the matmul peaks, load."""
  jx, tt = timed["jaxser"], timed["torch"]
  blocks = [blk for side in timed.values() for blk in side["blocks"]]
  row = {"model": name, "mode": mode, "input": shape_text(batch),
         "params_jaxser": params[0], "params_torch": params[1],
         "jaxser_ms": jx["median_ms"], "torch_ms": tt["median_ms"],
         "torch_over_jaxser": tt["median_ms"] / jx["median_ms"],
         "xla_gflop": None if flops is None else flops / 1e9,
         "jaxser_gflops": None, "pct_jnp_dot_peak": None,
         "torch_gflops_same_work": None, "pct_torch_mm_peak": None,
         "load_before": blocks[0]["load_before"], "load_after": blocks[-1]["load_after"],
         "cpu_pct_jaxser": jx["cpu_pct"], "cpu_pct_torch": tt["cpu_pct"], "timing": timed}
  if flops is not None:
    row["jaxser_gflops"] = flops / 1e6 / jx["median_ms"]
    row["torch_gflops_same_work"] = flops / 1e6 / tt["median_ms"]
    row["pct_jnp_dot_peak"] = 100 * row["jaxser_gflops"] / peaks["jnp.dot"]["gflops"]
    row["pct_torch_mm_peak"] = 100 * row["torch_gflops_same_work"] / peaks["torch.mm"]["gflops"]
  return row


def bench_model(name: str, s: Settings, peaks: dict, rng) -> tuple[list, dict, Spec]:
  """(rows, pipeline vs step, spec) of one model: train, then each inference length."""
  start = time.perf_counter()
  spec = SPECS[name](s.quick)
  mesh = sharding.make_mesh()
  batch = make_batch(spec, spec.batch, spec.seconds, rng)
  model, train, predict = build_jax(spec, mesh, batch)
  twin = bench_torch.twin(model, NUM_CLASSES)
  params = (param_count(train.state.params), bench_torch.param_count(twin))
  check_params(name, *params)
  print(f"{name}: {spec.source}; parameters jaxser {params[0]:,}, PyTorch {params[1]:,}",
        flush=True)
  flops = xla_flops(train.step, train.state, sharding.put_batch(batch, mesh))
  tcall = bench_torch.train_call(twin, spec.loss, spec.loss_cfg, batch, spec.train_cfg,
                                 STEPS_PER_EPOCH)
  rows = [make_row(name, "train", batch, params, compare({"jaxser": train, "torch": tcall}, s),
                   flops, peaks)]
  _print_row(rows[-1])
  for seconds in spec.infer_seconds[:1] if s.quick else spec.infer_seconds:
    one = make_batch(spec, 1, seconds, rng)
    jcall = bench_torch.Call(lambda one=one: jax.block_until_ready(predict(train.state, one)))
    flops = xla_flops(predict, train.state, sharding.put_batch(one, mesh))
    timed = compare({"jaxser": jcall, "torch": bench_torch.infer_call(twin, one)}, s)
    mode = f"inference {seconds:g} s" + (" (30 s padded)" if spec.input == "whisper_mel" else "")
    rows.append(make_row(name, mode, one, params, timed, flops, peaks))
    _print_row(rows[-1])
  rates = {}
  if spec.pipeline:
    n, need = (32, 8) if s.quick else (535, 200)
    rates = {"pipeline_batches_per_s": pipeline_rate(spec, n, spec.batch, need, rng),
             "step_batches_per_s": 1e3 / rows[0]["jaxser_ms"], "batch": spec.batch}
  print(f"  ({time.perf_counter() - start:.0f} s with compilation and set-up)", flush=True)
  return rows, rates, spec


def _print_row(r: dict):
  print(f"  {r['mode']:<28} jaxser {r['jaxser_ms']:9.2f} ms  PyTorch {r['torch_ms']:9.2f} ms"
        f"  PyTorch/jaxser {r['torch_over_jaxser']:5.2f}", flush=True)


# ----------------------------------------------------------------------------- report


def _fmt(v, spec="{:.1f}"):
  return "–" if v is None else spec.format(v)


def header(s: Settings, peaks: dict, pipelines: dict) -> dict:
  """Versions, cores, settings, matmul peaks and pipeline-vs-step rates."""
  return {"date": datetime.datetime.now().isoformat(timespec="seconds"),
          "jax": jax.__version__, "jax_backend": jax.default_backend(),
          "flax": flax.__version__, "torch": torch.__version__,
          "torch_threads": torch.get_num_threads(), "transformers": transformers.__version__,
          "cores": os.cpu_count(), "settings": dataclasses.asdict(s),
          "matmul_n": MATMUL_N, "jnp_dot_gflops": peaks["jnp.dot"]["gflops"],
          "torch_mm_gflops": peaks["torch.mm"]["gflops"], "pipelines": pipelines}


def markdown(head: dict, rows: list, notes: list) -> str:
  """The results table with its header lines."""
  s = head["settings"]
  lines = [
      "# jaxser vs PyTorch: train step and batch-1 inference (scripts/bench.py)", "",
      f"{head['date']}; jax {head['jax']} ({head['jax_backend']}), flax {head['flax']}, "
      f"torch {head['torch']} ({head['torch_threads']} threads), transformers "
      f"{head['transformers']}; {head['cores']} cores; {s['warmup']} warm-up + {s['steps']} "
      f"timed calls per block, {s['blocks']} alternating blocks per framework, medians"
      + (" (--quick: tiny shapes, not a measurement)" if s["quick"] else "") + ".", "",
      f"Matmul peak ({head['matmul_n']}×{head['matmul_n']} fp32): jnp.dot "
      f"{head['jnp_dot_gflops']:.1f} GFLOP/s, torch.mm {head['torch_mm_gflops']:.1f} GFLOP/s.",
      ""]
  for name, p in head["pipelines"].items():
    lines.append(f"Pipeline vs step, {name} (batch {p['batch']}): tf.data "
                 f"{p['pipeline_batches_per_s']:.1f} batches/s, train step "
                 f"{p['step_batches_per_s']:.2f} batches/s "
                 f"({p['pipeline_batches_per_s'] / p['step_batches_per_s']:.1f}×).")
  lines += ["", "| model | mode | input | params jaxser | params torch | jaxser ms | PyTorch ms "
            "| PyTorch / jaxser | jaxser GFLOP/s (XLA) | % of jnp.dot peak | load before / after "
            "| process CPU % jaxser / torch |", "|" + " --- |" * 12]
  for r in rows:
    lines.append(
        f"| {r['model']} | {r['mode']} | {r['input']} | {r['params_jaxser']:,} | "
        f"{r['params_torch']:,} | {r['jaxser_ms']:.2f} | {r['torch_ms']:.2f} | "
        f"{r['torch_over_jaxser']:.2f} | {_fmt(r['jaxser_gflops'])} | "
        f"{_fmt(r['pct_jnp_dot_peak'])} | {r['load_before']:.2f} / {r['load_after']:.2f} | "
        f"{r['cpu_pct_jaxser']:.0f} / {r['cpu_pct_torch']:.0f} |")
  lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
  return "\n".join(lines) + "\n"


NOTES = (
    "PyTorch / jaxser > 1: jaxser is faster. GFLOP/s: XLA's flop count of the compiled "
    "jaxser call over its median time; % of the jnp.dot peak measured in the same run.",
    "load before / after: os.getloadavg() 1-minute load at the first block's start and the "
    "last block's end; process CPU %: process CPU time / wall / cores over the timed calls.",
    "Pipeline rates: jaxser.data.pipeline on synthetic in-memory arrays of the stage's input "
    "shape (EmoDB's 535 examples), with the stage's teacher caches; the step rate is the "
    "jaxser train row's.",
)


def write_results(out: str, head: dict, rows: list, notes: list):
  """<out>/bench.json and <out>/bench.md, each written atomically."""
  io_utils.write_json(os.path.join(out, "bench.json"),
                      {"header": head, "rows": rows, "notes": notes})
  io_utils.write_text(os.path.join(out, "bench.md"), markdown(head, rows, notes))


# ----------------------------------------------------------------------------- main


def parse_args(argv=None):
  p = argparse.ArgumentParser(
      description=__doc__.split("\n\n")[0],
      epilog="\n\n".join(__doc__.split("\n\n")[1:]),
      formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--models", default=",".join(MODELS),
                 help=f"comma-separated models to run, of {', '.join(MODELS)} (default: all)")
  p.add_argument("--out", default=os.path.join("runs", "bench"),
                 help="directory for bench.json and bench.md (default: runs/bench)")
  p.add_argument("--quick", action="store_true",
                 help="tiny shapes, 1 warm-up + 2 timed calls, 1 block, inference at 1 s "
                 "only: checks that the script runs (not a measurement)")
  p.add_argument("--warmup", type=int, help="untimed calls per block (default 3; quick 1)")
  p.add_argument("--steps", type=int, help="timed calls per block (default 10; quick 2)")
  p.add_argument("--blocks", type=int, help="blocks per framework (default 3; quick 1)")
  args = p.parse_args(argv)
  args.models = [m.strip() for m in args.models.split(",") if m.strip()]
  unknown = sorted(set(args.models) - set(MODELS))
  if unknown or not args.models:
    p.error(f"--models: {unknown or 'none given'}; choose from {', '.join(MODELS)}")
  return args


def settings_of(args) -> Settings:
  base = (1, 2, 1) if args.quick else (3, 10, 3)
  given = (args.warmup, args.steps, args.blocks)
  warmup, steps, blocks = (b if g is None else g for g, b in zip(given, base))
  return Settings(warmup, max(steps, 1), max(blocks, 1), args.quick)


def main(argv=None) -> int:
  args = parse_args(argv)
  s = settings_of(args)
  torch.set_num_threads(os.cpu_count())
  transformers.logging.set_verbosity_error()
  rng = np.random.default_rng(0)
  peaks = matmul_peak(s)
  print(f"matmul peak {MATMUL_N}² fp32: jnp.dot {peaks['jnp.dot']['gflops']:.1f} GFLOP/s, "
        f"torch.mm {peaks['torch.mm']['gflops']:.1f} GFLOP/s", flush=True)
  rows, pipelines, notes = [], {}, list(NOTES)
  for name in args.models:
    model_rows, rates, spec = bench_model(name, s, peaks, rng)
    rows += model_rows
    notes += [n for n in spec.notes if n not in notes]
    if rates:
      pipelines[name] = rates
    gc.collect()
  head = header(s, peaks, pipelines)
  write_results(args.out, head, rows, notes)
  print(markdown(head, rows, notes))
  print(f"wrote {os.path.join(args.out, 'bench.json')} and bench.md")
  return 0


if __name__ == "__main__":
  sys.exit(main())
