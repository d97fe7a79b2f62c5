"""Exports one stage of a finished run as a TensorFlow SavedModel and / or a TFLite flat buffer.

    python -m jaxser.export --run runs/quickstart --fold 0 --format tflite
    python -m jaxser.export --run runs/quickstart --fold 0 --seconds 1 --out exported/

The exported graph (jax2tf) takes raw mono float32 audio at the run's sample rate (16 kHz
unless its corpus says otherwise), `audio` [batch, samples] of a fixed length (default:
one window of the stage, its `input.segment` seconds or its `max_seconds`; `--seconds` to
choose), and gives class probabilities `probabilities` [batch, classes] (batch 1 in the
TFLite model, any batch in the SavedModel). The feature front
end is part of the graph (`features/frontend.py`): input kinds `waveform` (per-clip
zero-mean unit-variance normalisation) and `logfbank` (log mel filterbanks, normalised per
clip), and `whisper_states` (the stage's Whisper model is exported on the waveform, its
cached frozen layers in the graph with the checkpoint's weights); stages on other inputs
are refused. Each clip is normalised as a whole, so feed it
audio cut as `python -m jaxser.predict` cuts windows; a shorter clip zero-padded to the
length is normalised with its padding and differs a little from predict's output.

Writes to --out (default <run>/export/<stage>_fold<k>/): `saved_model/` (signature
serving_default), `model.tflite` (TFLite builtin ops only), and `model.json` (classes in
output order, sample rate, input length), each atomically; checks the exported outputs
against the JAX model on a random clip and prints the paths, sizes and largest difference.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402

from jaxser.errors import UserError  # noqa: E402

FORMATS = {"savedmodel": ("savedmodel",), "tflite": ("tflite",), "both": ("savedmodel", "tflite")}


def default_seconds(input_cfg) -> float:
  """One window of the stage's input: its segment seconds, else its `max_seconds`."""
  from jaxser import inference
  seconds = inference.window_seconds(input_cfg)
  if seconds is None:
    raise UserError(f"input kind {input_cfg.kind!r} sets no clip length; pass --seconds")
  return seconds


def probabilities_fn(stage_model, input_cfg, sample_rate: int, num_samples: int):
  """`(variables, audio [B, num_samples]) -> probabilities [B, C]`: front end, model, softmax."""
  import jax
  from jaxser.features import frontend
  front = frontend.build(input_cfg, sample_rate, num_samples)
  model = stage_model.model

  def probabilities(variables, audio):
    x, length = front(audio)
    logits = model.apply(variables, x, length, train=False)["logits"]
    return jax.nn.softmax(logits.astype(np.float32), axis=-1)

  return probabilities


def to_tensorflow(fn, variables, num_samples: int, batch: int | None = None,
                  platforms=("cpu",)):
  """(tf.Module holding the weights as variables, its `serve` tf.function): `fn` through
  jax2tf for audio [batch, num_samples] (batch None: any batch size)."""
  import jax
  import tensorflow as tf
  from jax.experimental import jax2tf
  leaves, treedef = jax.tree_util.tree_flatten(variables)
  module = tf.Module()
  # Weights as variables, not graph constants: a GraphDef is capped at 2 GB.
  module.weights = [tf.Variable(np.asarray(v), trainable=False) for v in leaves]
  converted = jax2tf.convert(lambda weights, audio: fn(treedef.unflatten(weights), audio),
                             polymorphic_shapes=[None, f"({batch or 'b'}, {num_samples})"],
                             with_gradient=False, native_serialization_platforms=platforms)

  @tf.function(autograph=False, input_signature=[
      tf.TensorSpec([batch, num_samples], tf.float32, name="audio")])
  def serve(audio):
    return {"probabilities": converted(list(module.weights), audio)}

  module.serve = serve
  return module, serve


def _size(path: str) -> int:
  if os.path.isfile(path):
    return os.path.getsize(path)
  return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def _human(n: int) -> str:
  return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def export(run: str, fold: int = 0, stage: str | None = None, formats=("savedmodel", "tflite"),
           seconds: float | None = None, out: str | None = None, log=print) -> dict:
  """Writes the exports of `stage` (default: the run's distilled student) in fold `fold`;
  returns {"savedmodel"/"tflite"/"metadata": path, "max_abs_diff": {format: value}}."""
  import jax
  from jaxser import inference, io_utils
  config = inference.read_config(run)
  stage = stage or inference.default_stage(config)
  input_cfg, sample_rate, num_samples = _exported_input(config, stage, run, seconds)
  sm = inference.load(run, config, stage, fold)
  _, sm = inference.on_waveforms(config.stages[stage].input, sm)
  fn = probabilities_fn(sm, input_cfg, sample_rate, num_samples)
  try:  # shapes only: a model that cannot take this length says so before any conversion
    jax.eval_shape(fn, sm.variables, jax.ShapeDtypeStruct((1, num_samples), np.float32))
  except Exception as e:  # noqa: BLE001 - any shape error of the model, reported as such
    raise UserError(f"--seconds {num_samples / sample_rate:g}: stage {stage!r} "
                    f"({config.stages[stage].model.name}) cannot take {num_samples} samples "
                    f"({str(e).splitlines()[0][:300]}); choose a longer --seconds") from e
  out = out or os.path.join(run, "export", f"{stage}_fold{fold}")
  # The check: a random clip (fixed seed) through the JAX function and each export.
  clip = (0.1 * np.random.default_rng(0).standard_normal((2, num_samples))).astype(np.float32)
  expected = np.asarray(jax.jit(fn)(sm.variables, clip))
  written, diffs = {}, {}
  for fmt in formats:
    written[fmt], got = WRITERS[fmt](fn, sm.variables, num_samples, out, clip, stage)
    diffs[fmt] = float(np.abs(got - expected).max())
  classes = inference.classes(config)
  meta = {"run": os.path.abspath(run), "stage": stage, "fold": fold, "best_epoch": sm.epoch,
          "input": {"name": "audio", "shape": [None, num_samples], "tflite_shape": [1, num_samples],
                    "dtype": "float32",
                    "sample_rate": sample_rate, "seconds": num_samples / sample_rate,
                    "channels": 1, "front_end": to_plain(input_cfg)},
          "output": {"name": "probabilities", "shape": [None, len(classes)],
                     "classes": list(classes)}}
  written["metadata"] = os.path.join(out, "model.json")
  io_utils.write_json(written["metadata"], meta)
  log(f"{stage} (fold {fold}, best epoch {sm.epoch + 1}): audio [batch, {num_samples}] float32 "
      f"at {sample_rate} Hz ({num_samples / sample_rate:g} s) -> probabilities of {list(classes)}")
  for k, path in written.items():
    check = f", max |Δ| vs JAX {diffs[k]:.1e}" if k in diffs else ""
    log(f"wrote {path} ({_human(_size(path))}{check})")
  return {**written, "max_abs_diff": diffs}


def _exported_input(config, stage: str, run: str, seconds: float | None):
  """(input config the graph's front end computes, sample rate, samples per clip) of `stage`;
  UserError for a stage whose input has no front end in the graph."""
  from jaxser import inference
  from jaxser.features import frontend
  inference.check_stage(config, stage, run)
  exportable = lambda s: inference.on_waveforms(config.stages[s].input)[0].kind in frontend.KINDS
  input_cfg, _ = inference.on_waveforms(config.stages[stage].input)
  if not exportable(stage):
    ok = [s for s in config.stage_order if exportable(s)]
    raise UserError(f"stage {stage!r} reads input kind {input_cfg.kind!r} (config.stages."
                    f"{stage}.input.kind); export builds the feature front end into the graph "
                    f"and has one for {list(frontend.KINDS)} (and cached Whisper states) "
                    f"only; choose another --stage ({', '.join(ok) or 'this run has none'}) "
                    "or use python -m jaxser.predict")
  sample_rate = inference.sample_rate(config)
  seconds = default_seconds(input_cfg) if seconds is None else seconds
  num_samples = int(round(seconds * sample_rate))
  if num_samples < 1:
    raise UserError(f"--seconds {seconds}: a clip needs at least one sample at {sample_rate} Hz")
  return input_cfg, sample_rate, num_samples


def _write_savedmodel(fn, variables, num_samples: int, out: str, clip, stage: str):
  """(path of the SavedModel written under `out`, its probabilities of `clip`)."""
  import tensorflow as tf
  from jaxser import io_utils
  # CPU and CUDA lowerings both: the SavedModel serves on either.
  module, serve = to_tensorflow(fn, variables, num_samples, platforms=("cpu", "cuda"))
  path = os.path.join(out, "saved_model")
  with io_utils.atomic_dir(path) as tmp:
    tf.saved_model.save(module, tmp, signatures={"serving_default":
                                                 serve.get_concrete_function()})
  loaded = tf.saved_model.load(path).signatures["serving_default"]
  return path, loaded(audio=tf.constant(clip))["probabilities"].numpy()


def _write_tflite(fn, variables, num_samples: int, out: str, clip, stage: str):
  """(path of the TFLite model written under `out`, its probabilities of `clip`)."""
  import tensorflow as tf
  from jaxser import io_utils
  # Batch 1: with a free batch size XLA's slices become dynamic gathers, which the TFLite
  # converter cannot lower (DepthwiseConv1D's shifted slices, the fbank framing).
  module, serve = to_tensorflow(fn, variables, num_samples, batch=1)
  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [serve.get_concrete_function()], module)
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  try:
    blob = converter.convert()
  except Exception as e:  # noqa: BLE001 - the converter raises its own error types
    raise UserError(f"stage {stage!r}: the TFLite converter cannot lower this model "
                    f"({str(e).splitlines()[0][:300]}); --format savedmodel still works") from e
  path = os.path.join(out, "model.tflite")
  with io_utils.atomic_path(path) as tmp, open(tmp, "wb") as f:
    f.write(blob)
  return path, np.concatenate([run_tflite(path, c[None]) for c in clip])


WRITERS = {"savedmodel": _write_savedmodel, "tflite": _write_tflite}


def to_plain(cfg) -> dict:
  from jaxser.config_utils import to_dict
  return to_dict(cfg)


def run_tflite(path: str, audio: np.ndarray, threads: int | None = None) -> np.ndarray:
  """Probabilities [B, C] of a `model.tflite` on audio [B, N] (tf.lite.Interpreter)."""
  import warnings
  import tensorflow as tf
  with warnings.catch_warnings():  # tf.lite.Interpreter's notice of its move to LiteRT
    warnings.simplefilter("ignore")
    interpreter = tf.lite.Interpreter(model_path=path, num_threads=threads)
  runner = interpreter.get_signature_runner("serving_default")
  return runner(audio=np.asarray(audio, np.float32))["probabilities"]


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m jaxser.export", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--run", required=True,
                 help="run directory of python -m jaxser.train, e.g. runs/quickstart")
  p.add_argument("--fold", type=int, default=0,
                 help="the fold whose best checkpoint is exported (default 0)")
  p.add_argument("--stage", default=None,
                 help="a stage of the run on waveform or logfbank input (default: its distilled "
                 "student, the last stage of stage_order with teachers)")
  p.add_argument("--format", choices=sorted(FORMATS), default="both",
                 help="savedmodel (TensorFlow SavedModel), tflite (TFLite flat buffer) or both "
                 "(default)")
  p.add_argument("--seconds", type=float, default=None,
                 help="input length in seconds (default: one window of the stage: its "
                 "segment seconds or max_seconds)")
  p.add_argument("--out", default=None,
                 help="output directory (default <run>/export/<stage>_fold<k>)")
  args = p.parse_args(argv)
  try:
    export(args.run, args.fold, args.stage, FORMATS[args.format], args.seconds, args.out)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  from jaxser.predict import use_compilation_cache
  use_compilation_cache()
  sys.exit(main())
