"""How much each EmoDistill student's two projection heads vary from clip to clip.

    python scripts/emodistill_heads.py [--workdir results/emodistill_emodb] [--folds 0,1]

For every student stage of a finished fold (local best checkpoints needed) it prints, on the
test speaker's clips, each head's mean cosine to its own mean direction (1.0: the head gives
one direction for every clip, so the classifier learns nothing from it) and its mean norm; and
the same cosine for the cached teacher embeddings the heads are matched to.
"""

import argparse
import importlib
import os

import numpy as np

from jaxser import inference, sharding, trainer
from jaxser.config_utils import load_config_file
from jaxser.data import folds as folds_lib
from jaxser.data import teacher_cache
from jaxser.data.pipeline import Pipeline
from jaxser.data.registry import load_corpus
from jaxser.experiment import Experiment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUDENTS = ("student_alone", "emodistill", "no_logits", "no_embeddings", "no_linguistic",
            "no_prosodic")


def cosine_to_mean(e: np.ndarray) -> float:
  """Mean cosine of the rows of `e` to their mean direction."""
  unit = e / np.linalg.norm(e, axis=1, keepdims=True)
  centre = unit.mean(0)
  return float((unit @ (centre / np.linalg.norm(centre))).mean())


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", default=os.path.join(ROOT, "results", "emodistill_emodb"))
  p.add_argument("--config", default=os.path.join(ROOT, "configs", "emodistill_emodb.py"))
  p.add_argument("--folds", default="0")
  p.add_argument("--skip_bad_files", action="store_true",
                 help="as the run was made with it (the same corpus, so the same folds)")
  args = p.parse_args()

  config = load_config_file(args.config)
  corpus = load_corpus(config.corpus, skip_bad_files=args.skip_bad_files)
  protocol = dict(config.protocol)
  name, _ = protocol.pop("name"), protocol.pop("max_folds", 0)
  folds = folds_lib.make_folds(corpus.utterances, name, config.seed, **protocol)
  ex = Experiment(config, corpus, importlib.import_module(f"jaxser.methods.{config.method}"),
                  sharding.make_mesh(), args.workdir)
  width_l = config.stages.emodistill.model.linguistic_dim
  for k in (int(f) for f in args.folds.split(",")):
    fold = folds[k]
    teachers = {t: cosine_to_mean(teacher_cache.read(os.path.join(args.workdir, fold.name,
                                                                  "cache", t)).arrays["embedding"])
                for t in ("linguistic", "prosodic")}
    print(f"{fold.name} teachers' embeddings: cosine to mean linguistic "
          f"{teachers['linguistic']:.3f}, prosodic {teachers['prosodic']:.3f}")
    for stage in STUDENTS:
      if not inference.has_best(args.workdir, config, stage, k):
        print(f"{fold.name} {stage}: no best checkpoint here")
        continue
      best = inference.load(args.workdir, config, stage, k)
      # Inference reads only params and batch stats of a train state.
      state = trainer.TrainState(step=None, params=best.variables["params"],
                                 batch_stats=best.variables.get("batch_stats", {}),
                                 opt_state=None, rng=None)
      inputs = ex.fold_inputs(stage, fold)
      ids = inputs.example_ids(fold.test, train=False)
      out = trainer.predict(trainer.make_predict_step(best.model, ex.mesh), state,
                            Pipeline(inputs).dataset(ids, ex.stage_train_cfg(stage).eval_batch_size,
                                                     train=False))
      z_l, z_p = out["embedding"][:, :width_l], out["embedding"][:, width_l:]
      norm = lambda z: np.linalg.norm(z, axis=1).mean()
      print(f"{fold.name} {stage:14s} (epoch {best.epoch:2d}): cosine to mean "
            f"z'_L {cosine_to_mean(z_l):.3f} z'_P {cosine_to_mean(z_p):.3f}; mean norm "
            f"z'_L {norm(z_l):.2f} z'_P {norm(z_p):.2f}")


if __name__ == "__main__":
  main()
