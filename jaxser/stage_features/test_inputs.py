"""Testing a stage's best model on other inputs too: `stages.<name>.test_inputs`.

`test_inputs = {"a_only": dict(zero="v")}` tests the model again on the fold's test set with
its input settings changed as given (here: the video columns of a `dialogue` input set to 0,
COGMEN-AV "in audio-only inference"); result.json gets `test_inputs: {variant: metrics}` and
the report a table of them. The inputs keep the stage's layout, so the model takes them as is.
"""

from __future__ import annotations

import ml_collections

from jaxser.config_utils import to_dict
from jaxser.data.inputs import build_inputs
from jaxser.data.pipeline import Pipeline


def results(config, corpus, run, evaluate) -> dict:
  """{"test_inputs": {variant: metrics}} of stage `run.name`, or {} without any;
  `evaluate(dataset) -> metrics` tests the stage's best model on a dataset of the test ids."""
  variants = config.stages[run.name].get("test_inputs") or {}
  out = {}
  for variant, changes in variants.items():
    spec = ml_collections.ConfigDict({**to_dict(config.stages[run.name].input),
                                      **to_dict(changes)})
    inputs = build_inputs(corpus, spec)
    ids = inputs.example_ids(run.fold.test, train=False)
    out[variant] = evaluate(Pipeline(inputs).dataset(ids, run.plan.train.eval_batch_size,
                                                     train=False))
  return {"test_inputs": out} if out else {}
