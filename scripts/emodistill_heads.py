"""How much each EmoDistill student's two projection heads vary from clip to clip.

    python scripts/emodistill_heads.py [--workdir results/emodistill_emodb] [--folds 0,1]

For every student stage of a finished fold (local best checkpoints needed) it prints, on the
test speaker's clips, each head's mean cosine to its own mean direction (1.0: the head gives
one direction for every clip, so the classifier learns nothing from it) and its mean norm; and
the same cosine for the cached teacher embeddings the heads are matched to.

Checkpoints stay on the machine that trained, and a run's folds may be trained in several
sittings: `--record` adds each measured fold to <workdir>/heads.json and rewrites the table of
every fold recorded so far, <workdir>/heads.md.
"""

import argparse
import importlib
import os

import numpy as np

from jaxser import inference, io_utils, sharding, trainer
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
  p.add_argument("--record", action="store_true",
                 help="add the measured folds to <workdir>/heads.json and write heads.md")
  p.add_argument("--skip_bad_files", action="store_true",
                 help="as the run was made with it (the same corpus, so the same folds)")
  args = p.parse_args()

  config = load_config_file(args.config)
  corpus = load_corpus(config.corpus, skip_bad_files=args.skip_bad_files)
  folds = folds_lib.from_config(config.protocol, corpus.utterances, config.seed)
  ex = Experiment(config, corpus, importlib.import_module(f"jaxser.methods.{config.method}"),
                  sharding.make_mesh(), args.workdir)
  width_l = config.stages.emodistill.model.linguistic_dim
  measured = {}
  for k in (int(f) for f in args.folds.split(",")):
    fold = folds[k]
    if not os.path.isdir(os.path.join(args.workdir, fold.name, "cache")):
      print(f"{fold.name}: no teacher caches here")
      continue
    teachers = {t: cosine_to_mean(teacher_cache.read(os.path.join(args.workdir, fold.name,
                                                                  "cache", t)).arrays["embedding"])
                for t in ("linguistic", "prosodic")}
    print(f"{fold.name} teachers' embeddings: cosine to mean linguistic "
          f"{teachers['linguistic']:.3f}, prosodic {teachers['prosodic']:.3f}")
    measured[fold.name] = {"teachers": teachers, "students": {}}
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
      norm = lambda z: float(np.linalg.norm(z, axis=1).mean())
      row = dict(epoch=int(best.epoch), cos_l=cosine_to_mean(z_l), cos_p=cosine_to_mean(z_p),
                 norm_l=norm(z_l), norm_p=norm(z_p))
      measured[fold.name]["students"][stage] = row
      print(f"{fold.name} {stage:14s} (epoch {row['epoch']:2d}): cosine to mean "
            f"z'_L {row['cos_l']:.3f} z'_P {row['cos_p']:.3f}; mean norm "
            f"z'_L {row['norm_l']:.2f} z'_P {row['norm_p']:.2f}")
  if args.record:
    record(args.workdir, measured)


def record(workdir: str, measured: dict) -> None:
  """Merges `measured` ({fold: {teachers, students}}) into heads.json; writes heads.md."""
  path = os.path.join(workdir, "heads.json")
  folds = io_utils.read_json(path) if os.path.exists(path) else {}
  for fold, m in measured.items():  # a fold measured again keeps stages measured before
    kept = folds.get(fold, {}).get("students", {})
    folds[fold] = {"teachers": m["teachers"], "students": {**kept, **m["students"]}}
  folds = dict(sorted(folds.items(), key=lambda kv: int(kv[0].split("_")[1])))
  io_utils.write_json(path, folds)
  lines = ["# EmoDistill projection heads, test clips (scripts/emodistill_heads.py)", "",
           "Mean cosine of each clip's head output to the head's mean direction (1.000: one "
           "direction for every clip, a collapsed head) and mean norm; teachers: the cached "
           "embeddings the heads are matched to.", "",
           "| fold | stage | epoch | cos z'_L | cos z'_P | norm z'_L | norm z'_P |",
           "|---|---|---:|---:|---:|---:|---:|"]
  for fold, m in folds.items():
    t = m["teachers"]
    lines.append(f"| {fold} | teachers (linguistic, prosodic) | | {t['linguistic']:.3f} | "
                 f"{t['prosodic']:.3f} | | |")
    for stage, r in m["students"].items():
      lines.append(f"| {fold} | {stage} | {r['epoch']} | {r['cos_l']:.3f} | {r['cos_p']:.3f} | "
                   f"{r['norm_l']:.2f} | {r['norm_p']:.2f} |")
  io_utils.write_text(os.path.join(workdir, "heads.md"), "\n".join(lines) + "\n")
  print(f"recorded {', '.join(measured) or 'no fold'} in {path} (table: heads.md)")


if __name__ == "__main__":
  main()
