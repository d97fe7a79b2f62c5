"""Experiment resolves each stage's plan (train settings, sources, hash) once, and refuses a
loss that reads a teacher the stage does not list, at construction."""

import pytest

from jaxser import stage_plan
from jaxser.data import synthetic
from jaxser.errors import UserError
from jaxser.experiment import Experiment
from jaxser.methods import emodistill, litecnn_kd
from tiny_config import load_config, tiny_quickstart


def _experiment(config, method):
  config.corpus = dict(name="synthetic", seed=0, num_speakers=2, utterances_per_speaker=2)
  return Experiment(config, synthetic.build(config.corpus), method, None, "/nonexistent")


def test_plans_are_resolved_once_with_the_stage_hashes():
  config = tiny_quickstart()
  ex = _experiment(config, litecnn_kd)
  assert set(ex.plans) == set(config.stage_order)
  assert ex.stage_train_cfg("student_kd") is ex.plans["student_kd"].train
  assert ex.plans["student_kd"].sources == ("teacher",)
  assert {s: p.hash for s, p in ex.plans.items()} == stage_plan.stage_hashes(
      config, config.stage_order)


@pytest.mark.parametrize("key", ["linguistic", "prosodic"])
def test_a_misnamed_teacher_of_the_loss_fails_at_construction(key):
  """EmoDistill's loss reads its teachers by `loss_cfg.linguistic` / `.prosodic` (the
  method's TEACHER_KEYS; "" leaves one out, test_emodistill_method runs those rows); a typo
  there used to fail only when the student started."""
  config = load_config("emodistill_emodb")
  config.stages.emodistill.loss_cfg[key] = "prosodc"
  where = "config.stages.emodistill"
  with pytest.raises(UserError, match=rf"{where}.loss_cfg.{key}='prosodc' is not one of "
                                      rf"{where}.teachers \(.*\), so its outputs would not be "
                                      rf"cached; name one of them, or add 'prosodc' to "
                                      rf"{where}.teachers"):
    _experiment(config, emodistill)

