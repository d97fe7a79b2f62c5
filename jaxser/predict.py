"""Emotion of audio files, by a model of a finished run.

    python -m jaxser.predict --run runs/quickstart recordings/ call.wav
    python -m jaxser.predict --run runs/quickstart --ensemble --format csv --windows long.wav

Reads the run's config and the best checkpoint of one stage (default: the distilled
student, the last stage that has teachers) in fold 0, `--fold K`, or every fold that has
one (`--ensemble`, class probabilities averaged over folds). Each file is read as the run
read its corpus: channels averaged, resampled to the run's sample rate; then cut into the
stage's windows (its `input.segment`, evaluated every `eval_hop`; or, for an unsegmented
input, windows of its `max_seconds` every half window) whose probabilities are aggregated
per file as the stage's evaluation does (`segment.aggregate`, mean probability otherwise).
A file shorter than a window is one zero-padded window, as in training.

Prints one line per file: JSON lines {"file", "emotion", "probabilities": {class: p}}
(with --windows also "windows": [{"start", "end", "emotion", "probabilities"}], times in
seconds), or CSV (file, emotion, one column per class; with --windows the columns start and
end, and a row per window after each file's row). A file the loader rejects (features/
audio.py: unreadable, NaN or inf samples, ...) is named on stderr and skipped; the exit
code is then 1 (the other files are still labelled), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import sys

# TensorFlow (imported by some feature kinds) prints start-up lines unless told before import.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402

from jaxser.errors import UserError  # noqa: E402

CHUNK = 32  # files whose inputs are built and predicted together
PROGRESS_FROM = 10  # files; fewer get no progress bar
# Endings of the audio files looked for in directories (formats libsndfile reads).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au",
                    ".caf", ".w64")


def find_files(paths: list[str]) -> list[str]:
  """Files named on the command line (kept whatever their ending, so a bad one is reported)
  and the audio files under named directories, each directory in sorted path order."""
  files = []
  for p in paths:
    if not os.path.isdir(p):
      files.append(p)
      continue
    found = sorted(os.path.join(root, f) for root, _, names in os.walk(p) for f in names
                   if os.path.splitext(f)[1].lower() in AUDIO_EXTENSIONS and not f.startswith("."))
    if not found:
      raise UserError(f"directory {p} holds no audio files (looked for "
                      f"{', '.join(AUDIO_EXTENSIONS)}); name files or another directory")
    files += found
  return files


def window_input(input_cfg):
  """(input config as predict cuts files, window seconds, window hop seconds).

  A segmented input keeps its segments (hop = its `eval_hop`); an input cut at
  `max_seconds` gets windows of that length every half window; a whole-clip input
  (functionals, Whisper log-mel) gets one window, the whole file. Disk caches are off:
  a user's files are not worth caching.
  """
  import ml_collections
  from jaxser import inference
  from jaxser.config_utils import to_dict
  spec = {**to_dict(input_cfg), "cache_dir": None}
  seconds = inference.window_seconds(input_cfg)
  if spec.get("segment"):
    seg = spec["segment"]
    return ml_collections.ConfigDict(spec), seconds, float(seg.get("eval_hop", seg["hop"]))
  if seconds is None or spec["kind"] == "whisper_logmel":  # no time axis to cut
    return ml_collections.ConfigDict(spec), seconds, None
  spec["segment"] = dict(seconds=seconds, hop=seconds / 2, eval_hop=seconds / 2,
                         aggregate="mean_prob")
  return ml_collections.ConfigDict(spec), seconds, seconds / 2


def _softmax(z: np.ndarray) -> np.ndarray:
  e = np.exp(z - z.max(axis=-1, keepdims=True))
  return e / e.sum(axis=-1, keepdims=True)


class Predictor:
  """Class probabilities of waveforms by one stage of a run, in one fold or averaged over
  several (`folds`)."""

  def __init__(self, run: str, config, stage: str, folds: list[int]):
    import jax
    from jaxser import inference
    self.config, self.stage = config, stage
    self.classes = inference.classes(config)
    self.sample_rate = inference.sample_rate(config)
    self.input_cfg, self.seconds, self.hop = window_input(config.stages[stage].input)
    self.batch_size = int(inference.resolve_stage_train(config, stage).eval_batch_size)
    self.models = [inference.load(run, config, stage, k) for k in folds]
    model = self.models[0].model  # every fold's model has the same config
    self._logits = jax.jit(
        lambda variables, x, length: model.apply(variables, x, length, train=False)["logits"])

  def _logits_of(self, variables, x: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Logits of every row, in batches of a few fixed sizes (each compiled once)."""
    out = []
    for start in range(0, len(x), self.batch_size):
      xb, lb = x[start:start + self.batch_size], length[start:start + self.batch_size]
      n = len(xb)
      size = min(self.batch_size, 1 << (n - 1).bit_length())  # powers of two up to the batch
      pad = size - n  # padded rows repeat the first one: valid input, dropped below
      xb = np.concatenate([xb, np.repeat(xb[:1], pad, 0)])
      lb = np.concatenate([lb, np.repeat(lb[:1], pad, 0)])
      out.append(np.asarray(self._logits(variables, xb, lb))[:n])
    return np.concatenate(out)

  def __call__(self, waves: list[np.ndarray]) -> list[dict]:
    """Per waveform: {"probabilities": [C], "windows": [(start s, end s, [C])]}."""
    from jaxser.data.corpus import Corpus, Utterance
    from jaxser.data.inputs import build_inputs
    from jaxser.features import segments
    utts = [Utterance(f"file{i}", "", 0) for i in range(len(waves))]
    corpus = Corpus("predict", self.classes, self.sample_rate, utts,
                    waveforms={u.id: w for u, w in zip(utts, waves)})
    arrays = build_inputs(corpus, self.input_cfg)
    ids = arrays.example_ids([u.id for u in utts], train=False)
    rows = arrays.rows(ids.tolist())
    x, length = arrays.x[rows], arrays.length[rows]
    if arrays.segmented:
      position = {u.id: i for i, u in enumerate(utts)}
      index = np.asarray([position[u] for u in arrays.example_utts(ids).tolist()])
    else:
      index = np.arange(len(utts))
    per_file, per_window = [], []
    for m in self.models:
      logits = self._logits_of(m.variables, x, length)
      how = arrays.aggregate if arrays.segmented else "mean_prob"
      scores = segments.aggregate(logits, index, len(utts), how)
      per_file.append(_softmax(scores) if how == "mean_logit" else scores)
      per_window.append(_softmax(logits.astype(np.float64)))
    probs, window_probs = np.mean(per_file, axis=0), np.mean(per_window, axis=0)
    out = []
    for i, w in enumerate(waves):
      duration = len(w) / self.sample_rate
      windows = []
      for r in np.flatnonzero(index == i):
        k = int(re.search(r"(\d+)$", str(ids[r])).group(1)) if arrays.segmented else 0
        start = k * self.hop if self.hop else 0.0
        end = min(start + self.seconds, duration) if self.seconds else duration
        windows.append((round(start, 3), round(end, 3), window_probs[r]))
      out.append({"probabilities": probs[i], "windows": windows})
    return out


class Writer:
  """JSON lines or CSV rows on `stream`, one file (and its windows) at a time."""

  def __init__(self, stream, fmt: str, classes, windows: bool):
    self.stream, self.fmt, self.classes, self.windows = stream, fmt, list(classes), windows
    if fmt == "csv":
      self._csv = csv.writer(stream, lineterminator="\n")
      self._csv.writerow(["file"] + (["start", "end"] if windows else []) + ["emotion"]
                         + self.classes)

  def _probs(self, p) -> dict:
    return {c: round(float(v), 6) for c, v in zip(self.classes, p)}

  def write(self, path: str, result: dict):
    import json
    p = result["probabilities"]
    if self.fmt == "jsonl":
      row = {"file": path, "emotion": self.classes[int(np.argmax(p))],
             "probabilities": self._probs(p)}
      if self.windows:
        row["windows"] = [{"start": s, "end": e, "emotion": self.classes[int(np.argmax(q))],
                           "probabilities": self._probs(q)} for s, e, q in result["windows"]]
      self.stream.write(json.dumps(row) + "\n")
    else:
      numbers = lambda q: [f"{float(v):.6f}" for v in q]
      self._csv.writerow([path] + (["", ""] if self.windows else [])
                         + [self.classes[int(np.argmax(p))]] + numbers(p))
      for s, e, q in (result["windows"] if self.windows else []):
        self._csv.writerow([path, s, e, self.classes[int(np.argmax(q))]] + numbers(q))
    self.stream.flush()


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(prog="python -m jaxser.predict", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("paths", nargs="+", metavar="FILE_OR_DIR",
                 help="audio files (any format soundfile reads: wav, flac, ogg, ...) and "
                 "directories, searched recursively for audio files")
  p.add_argument("--run", required=True,
                 help="run directory of python -m jaxser.train, e.g. runs/quickstart")
  which = p.add_mutually_exclusive_group()
  which.add_argument("--fold", type=int, default=None,
                     help="the fold whose best checkpoint labels the files (default 0)")
  which.add_argument("--ensemble", action="store_true",
                     help="average the class probabilities of every fold with a best checkpoint")
  p.add_argument("--stage", default=None,
                 help="a stage of the run (default: its distilled student, the last stage "
                 "of stage_order with teachers); stages on transcripts or with input."
                 "normalization 'train' / 'speaker' cannot label single files")
  p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl",
                 help="output on stdout: JSON lines (default) or CSV with a header")
  p.add_argument("--windows", action="store_true",
                 help="also print every window's probabilities (start and end in seconds)")
  return p.parse_args(argv)


def run(args, stdout=None, stderr=None) -> int:
  """Labels the files of `args`; 0 if every file was labelled, 1 if some failed."""
  from tqdm import tqdm
  from jaxser import inference
  stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
  config = inference.read_config(args.run)
  stage = args.stage or inference.default_stage(config)
  inference.check_stage(config, stage, args.run)
  folds = _folds(args, config, stage)
  files = find_files(args.paths)
  predictor = Predictor(args.run, config, stage, folds)
  writer = Writer(stdout, args.format, predictor.classes, args.windows)
  failed = 0
  bar = tqdm(total=len(files), desc=f"{stage} ({'ensemble' if args.ensemble else 'fold'} "
             f"{','.join(map(str, folds))})", unit="file", file=stderr,
             disable=len(files) < PROGRESS_FROM)

  def fail(path, e):
    nonlocal failed
    failed += 1
    message = str(e).splitlines()[0] if str(e) else type(e).__name__
    bar.write(f"error: {path}: {message}" if path not in message else f"error: {message}",
              file=stderr)

  for start in range(0, len(files), CHUNK):
    for path, result in _label(predictor, files[start:start + CHUNK], fail):
      writer.write(path, result)
    bar.update(min(CHUNK, len(files) - start))
  bar.close()
  if failed:
    print(f"{failed} of {len(files)} files could not be labelled (named above)", file=stderr)
  return 1 if failed else 0


def _folds(args, config, stage: str) -> list[int]:
  """The folds whose models label the files: every fold with a best checkpoint of `stage`
  (--ensemble), else --fold."""
  from jaxser import inference
  if not args.ensemble:
    return [args.fold or 0]
  folds = inference.folds_with_best(args.run, config, stage)
  if not folds:
    raise UserError(f"--ensemble: no fold of {args.run} holds a best checkpoint of stage "
                    f"{stage!r}; train it first (python -m jaxser.train --workdir {args.run})")
  return folds


def _label(predictor, paths, fail) -> list:
  """(path, result) of each of `paths` that loads and labels; `fail(path, error)` for the
  others (the rest are still labelled)."""
  from jaxser.features import audio
  good = []
  for path in paths:
    try:
      good.append((path, audio.load_wav(path, predictor.sample_rate)))
    except audio.AudioError as e:
      fail(path, e)
  try:
    results = predictor([w for _, w in good]) if good else []
  except Exception:  # a feature extractor choked on one of them: find which, keep the rest
    results = []
    for path, w in list(good):
      try:
        results += predictor([w])
      except Exception as e:  # noqa: BLE001 - reported per file, the run goes on
        fail(path, e)
        good.remove((path, w))
  return [(path, result) for (path, _), result in zip(good, results)]


def use_compilation_cache() -> None:
  """The command line keeps compiled XLA programs where `jaxser.train` does, so a second call
  on the same model skips compiling."""
  import jax
  jax.config.update("jax_compilation_cache_dir",
                    os.environ.get("JAX_COMPILATION_CACHE_DIR",
                                   os.path.expanduser("~/.cache/jaxser/xla")))


def main(argv=None) -> int:
  args = parse_args(argv)
  try:
    return run(args)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  use_compilation_cache()
  sys.exit(main())
