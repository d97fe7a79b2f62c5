"""What each stage depends on, resolved once from the config: train settings, sources, hash."""

from __future__ import annotations

import dataclasses

import ml_collections

from jaxser.config_utils import config_hash, to_dict, without_locations
from jaxser.stage_features import init_from, noise


@dataclasses.dataclass(frozen=True)
class StagePlan:
  """A stage's resolved `train` settings, the stages it reads (teachers, then the `init_from`
  stage), its hash, which its results, checkpoints and teacher cache are keyed by, and its
  training seed.

  `seed` draws the initialisation, batch order, dropout and training augmentation: the
  stage's `train.seed` when set (repeats of one row under other seeds), else `config.seed`.
  Folds and the validation and test draws keep `config.seed`, so every repeat is measured on
  the same clips."""

  train: ml_collections.ConfigDict
  sources: tuple[str, ...]
  hash: str
  seed: int


def resolve_stage_train(config, name: str) -> ml_collections.ConfigDict:
  """`config.train` with stage `name`'s own `train` settings (those not None) on top."""
  cfg = config.train.copy_and_resolve_references()
  with cfg.unlocked():
    cfg.update({k: v for k, v in dict(config.stages[name].get("train", {})).items()
                if v is not None})
  return cfg


def sources(config, name: str) -> tuple[str, ...]:
  """The stages `name` reads: its `teachers` (outputs), then its `init_from` stage (weights)."""
  start = init_from.source(config.stages[name])
  return tuple(config.stages[name].get("teachers", ())) + ((start,) if start else ())


def resolve(config, names, known: dict | None = None,
            with_location: bool = False) -> dict[str, StagePlan]:
  """{stage: StagePlan} of `names` and every stage they read, on top of `known` plans.

  A hash holds what the corpus is, not where it lies (`config_utils.LOCATIONS`), so a checkout
  at another path reuses committed results. `with_location=True`: the hashes of results
  written before that (by the code up to 2026-12-06), for `scripts/rehash_results.py`.
  The stages each one reads must come first in `config.stage_order` (Experiment checks it),
  so the recursion ends."""
  plans = dict(known or {})
  corpus = to_dict(config.corpus)
  if not with_location:
    corpus = without_locations({"corpus": corpus})["corpus"]
  for name in names:
    if name in plans:
      continue
    plans.update(resolve(config, sources(config, name), plans, with_location))
    train = resolve_stage_train(config, name)
    read = sources(config, name)
    # The noisy test grid is part of a stage's result; hashed only when set, so results of
    # configs without one keep their hashes.
    digest = config_hash(corpus, to_dict(config.protocol), config.seed,
                         config.method, to_dict(config.stages[name]), to_dict(train),
                         [plans[s].hash for s in read], *noise.hash_parts(config))
    seed = train.get("seed")
    plans[name] = StagePlan(train=train, sources=read, hash=digest,
                            seed=int(config.seed if seed is None else seed))
  return plans


def stage_hashes(config, names=None, with_location: bool = False) -> dict[str, str]:
  """{stage: hash} of `names` (default: every stage of config.stages); `with_location`: as
  in `resolve`."""
  names = list(config.stages) if names is None else list(names)
  plans = resolve(config, names, with_location=with_location)
  return {n: plans[n].hash for n in names}
