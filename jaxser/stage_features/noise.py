"""Waveform noise a config turns on: training noise (`stages.<name>.noise`), noisy validation
clips (`noise.valid`) and the noisy test grid (`config.eval_noise`); see jaxser.data.augment."""

from __future__ import annotations

import ml_collections

from jaxser.config_utils import to_dict
from jaxser.data import normalization
from jaxser.data.augment import NoiseAugment
from jaxser.data.inputs import InputArrays
from jaxser.data.pipeline import Pipeline
from jaxser.errors import UserError
from jaxser.features import noise as noise_lib


def hash_parts(config) -> list:
  """What the noisy test grid adds to every stage hash: nothing without one, so results of
  configs without it keep their hashes."""
  return [to_dict(config.eval_noise)] if config.get("eval_noise") else []


def check_stage(config, name: str) -> None:
  """Refuses now what stage `name`'s noise settings would fail on later: noise on a stage
  that is not on waveforms or also masks features, bad SNRs, folders or types."""
  stage, where = config.stages[name], f"config.stages.{name}"
  if stage.get("noise"):
    if stage.get("spec_augment"):
      raise UserError(f"{where}: `noise` (waveforms) and `spec_augment` (features) cannot both "
                      "apply to one input; keep one")
    check(config, name, stage.noise, f"{where}.noise")
  if config.get("eval_noise") and stage.input.kind == "waveform":  # the grid skips other kinds
    check(config, name, config.eval_noise, "config.eval_noise")


def check(config, name: str, cfg, where: str) -> None:
  """A noise setting (`where`) for stage `name`: a waveform stage, SNRs given, the folder of
  recordings there (not read yet) and every type on offer."""
  kind = config.stages[name].input.kind
  if kind != "waveform":
    raise UserError(f"{where} adds noise to waveforms, but stage {name!r} has input kind "
                    f"{kind!r}")
  if not tuple(cfg.get("snr_db", ())):
    raise UserError(f"{where}.snr_db is empty; give at least one SNR in dB")
  try:
    files = noise_lib.recording_files(cfg.dir) if cfg.get("dir") else {}
  except (FileNotFoundError, ValueError) as e:
    raise UserError(f"{where}.dir: {e}") from e
  offered = sorted(set(files) | set(noise_lib.GENERATORS) | {"babble"})
  unknown = [t for t in cfg.get("types", ()) if t not in offered]
  if unknown:
    raise UserError(f"{where}.types {unknown} are unknown; on offer: {offered}")


def check_normalization(config, name: str) -> None:
  """Refuses `input.normalization` with waveform noise: noise is mixed into the clips after
  the statistics were taken on clean audio (and "speaker" would not see the noisy test
  audio), so the model would meet inputs the statistics do not describe."""
  stage = config.stages[name]
  norm = normalization.mode(stage.input, name)
  noisy = stage.get("noise") or (config.get("eval_noise") and stage.input.kind == "waveform")
  if norm != "none" and noisy:
    raise UserError(f"config.stages.{name}.input.normalization={norm!r} cannot be combined "
                    f"with waveform noise (stages.{name}.noise or config.eval_noise): noise is "
                    "mixed after the statistics are taken on clean audio; use normalization="
                    "'none' (waveform's per-utterance `normalize` re-normalises noisy clips)")


def augmenter(config, corpus, name: str, inputs, train_ids, cfg=None, seed=None):
  """A noise augmenter over `inputs` (default: the stage's training noise,
  `stages.<name>.noise`), or None when the stage has none. `check_stage` vetted the setting."""
  cfg = cfg if cfg is not None else config.stages[name].get("noise")
  if not cfg:
    return None
  utts = inputs.example_utts(inputs.ids)
  speaker = {u.id: u.speaker for u in corpus.utterances}
  return NoiseAugment(cfg, inputs, list(train_ids),
                      {i: speaker[u] for i, u in zip(inputs.ids.tolist(), utts.tolist())},
                      corpus.sample_rate, config.seed if seed is None else seed,
                      bool(config.stages[name].input.get("normalize", True)))


def noisy_dataset(inputs, utts, aug, batch_size: int):
  """The evaluation dataset of utterances `utts`, each clip mixed by `aug` (a fixed draw)."""
  ids = inputs.example_ids(utts, train=False)
  rows = inputs.rows(ids.tolist())
  x, length = inputs.x[rows], inputs.length[rows]
  noisy = InputArrays(ids=ids, x=aug(ids, x, length, 0), length=length, label=inputs.label[rows])
  return Pipeline(noisy).dataset(ids, batch_size, train=False)


def valid_dataset(config, corpus, name: str, inputs, fold, train_ids, batch_size: int):
  """With `stages.<name>.noise.valid`: the validation clips mixed with the stage's training
  noise, one fixed draw per clip (own seed stream), so the best epoch is chosen on the
  condition the stage trains on; else None."""
  stage = config.stages[name]
  if not (stage.get("noise") and stage.noise.get("valid", False)):
    return None
  aug = augmenter(config, corpus, name, inputs, train_ids, seed=(config.seed, 2))
  return noisy_dataset(inputs, fold.valid, aug, batch_size)


def test_grid(config, corpus, name: str, inputs, fold, train_ids, batch_size: int,
              evaluate) -> dict:
  """Test metrics with every test utterance mixed with each `config.eval_noise` type (all on
  offer when `types` is empty) at each SNR ({"white@0": {ua, wa}, ...}); the same noisy
  copies for every stage. `evaluate(dataset)` gives the metrics of one noisy test set."""
  grid_cfg = config.get("eval_noise")
  if not grid_cfg or config.stages[name].input.kind != "waveform":
    return {}
  # No types listed: every noise on offer, as for training noise (NoiseAugment resolves it).
  kinds = grid_cfg.types or augmenter(config, corpus, name, inputs, train_ids, cfg=grid_cfg).types
  out = {}
  for kind in kinds:
    for snr in grid_cfg.snr_db:
      one = ml_collections.ConfigDict({**to_dict(grid_cfg), "types": (kind,),
                                       "snr_db": (float(snr),)})
      aug = augmenter(config, corpus, name, inputs, train_ids, cfg=one, seed=(config.seed, 1))
      m = evaluate(noisy_dataset(inputs, fold.test, aug, batch_size))
      out[f"{kind}@{snr:g}"] = {"ua": m["ua"], "wa": m["wa"]}
  return out
