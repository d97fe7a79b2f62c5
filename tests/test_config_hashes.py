"""Every committed config keeps its stage hashes, so results written under them keep resuming.

tests/stage_hashes.json: "current", the hashes results are keyed by (corpus.manual_dir left
out, so any checkout reuses them); the others, the hashes with corpus.manual_dir at
/work/shared/data/emodb that results written before 2026-12-06 carry, recorded with the code
before issue 22's refactor (configs stating only what differs, stage features out of
Experiment), which scripts/rehash_results.py maps to the current ones. A change here
retrains, or orphans the results of, every run of that config.
"""

import glob
import json
import os

import pytest

from jaxser import report, stage_plan, trainer
from jaxser.config_utils import load_config_file
from tiny_config import ROOT

with open(os.path.join(ROOT, "tests", "stage_hashes.json")) as f:
  PINNED = json.load(f)
# The EmoDistill and MLKD configs, edited beside the refactor (recorded after issue 21's
# config commit b2e7f11): kept apart, so a change to them shows as its own failure.
CONFIGS, LEAD_EDITED, SAME_AS = PINNED["configs"], PINNED["lead_edited"], PINNED["same_as"]
CURRENT = PINNED["current"]


def load_spec(spec: str):
  """The config of configs/<spec> (`name` or `name:variant`)."""
  name, sep, variant = spec.partition(":")
  return load_config_file(os.path.join(ROOT, "configs", f"{name}.py") + sep + variant)


def stage_hashes(spec: str, with_location: bool = False, manual_dir: str | None = None) -> dict:
  """{stage: hash} of every stage of configs/<spec> (`name` or `name:variant`); with the
  corpus location (at /work/shared/data/emodb for EmoDB) when `with_location`."""
  config = load_spec(spec)
  if with_location and config.corpus.name == "emodb":  # default: an absolute path of the checkout
    config.corpus.manual_dir = "/work/shared/data/emodb"
  if manual_dir is not None:
    config.corpus.manual_dir = manual_dir
  return stage_plan.stage_hashes(config, with_location=with_location)


def _specs(pinned: dict) -> list:
  return sorted(pinned) + sorted(s for s, same in SAME_AS.items() if same in pinned)


def test_every_config_file_has_pinned_hashes():
  names = {os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "configs", "*.py"))}
  assert names == {spec.partition(":")[0] for spec in {**CONFIGS, **LEAD_EDITED}}
  assert set(CURRENT) == set(CONFIGS) | set(LEAD_EDITED)


@pytest.mark.parametrize("spec", _specs(CURRENT))
def test_config_keeps_its_stage_hashes_wherever_the_corpus_lies(spec):
  assert stage_hashes(spec) == CURRENT[SAME_AS.get(spec, spec)]
  assert stage_hashes(spec, manual_dir="/elsewhere/emodb") == CURRENT[SAME_AS.get(spec, spec)]


@pytest.mark.parametrize("spec", _specs(CONFIGS))
def test_config_keeps_its_located_stage_hashes(spec):
  """The hashes rehash_results.py maps from, which results written before 2026-12-06 carry."""
  assert stage_hashes(spec, with_location=True) == CONFIGS[SAME_AS.get(spec, spec)]


@pytest.mark.parametrize("spec", _specs(LEAD_EDITED))
def test_lead_edited_config_keeps_its_located_stage_hashes(spec):
  assert stage_hashes(spec, with_location=True) == LEAD_EDITED[SAME_AS.get(spec, spec)]


@pytest.mark.parametrize("spec", _specs(CONFIGS) + _specs(LEAD_EDITED))
def test_config_selects_and_monitors_validation_metrics_the_trainer_logs(spec):
  config = load_spec(spec)
  for stage in config.stages:
    trainer.check_monitors(stage_plan.resolve_stage_train(config, stage))


@pytest.mark.parametrize("spec", _specs(CONFIGS) + _specs(LEAD_EDITED))
def test_config_report_compares_only_stages_it_runs(spec):
  # The report leaves out a pair whose stage the run has not (a --config.stage_order subset),
  # so a variant whose own pairs name stages it does not run would lose its paired table.
  # (A pair may name an averaged row: it runs when all of the row's stages do.)
  config = load_spec(spec)
  assert report.compare_pairs(config, skipped=True) == [], (spec, sorted(config.stage_order))
