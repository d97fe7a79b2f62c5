"""COGMEN KD and masked training on the synthetic dialogues: 3 seeds, one table.

    python scripts/cogmen_synthetic.py [--out runs/cogmen_synthetic] [--seeds 0,1,2] [--epochs N]

Runs configs/cogmen_synthetic.py once per seed (`config.seed`: initialisation, batch order,
dropout, masks; the corpus is the same) through `jaxser.train.run`, each in <out>/seed_<k>
(resumable), then writes <out>/table.md: weighted F1 of COGMEN-A, COGMEN-AV (AV and A-only
inference: video zeroed), COGMEN-Mask (AV and A), and teacher AV -> triplet-KD student A,
mean ± std over seeds (population std) with per-seed values, and the paired differences the
paper claims (Mask-A − AV-in-A-only; KD student − COGMEN-A).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS = (("COGMEN-A", "cogmen_a", None), ("COGMEN-AV (AV)", "cogmen_av", None),
        ("COGMEN-AV (A-only inference)", "cogmen_av", "a_only"),
        ("COGMEN-Mask (AV)", "cogmen_mask", None), ("COGMEN-Mask (A)", "cogmen_mask", "a_only"),
        ("teacher AV -> triplet-KD student A", "student_kd", None))
CLAIMS = (("COGMEN-Mask (A) − COGMEN-AV (A-only inference)", 4, 2),
          ("KD student A − COGMEN-A", 5, 0))
PAPER = ("0.636", "0.61", "0.426", "0.687", "0.662", "0.60")


def weighted_f1(result: dict, variant) -> float:
  test = result["test"] if variant is None else result["test_inputs"][variant]
  return float(test["weighted_f1"])


def table(values: dict) -> str:
  """values: {seed: [weighted F1 per ROWS entry]} -> markdown."""
  seeds = sorted(values)
  v = np.asarray([values[s] for s in seeds])
  head = "| row | paper (IEMOCAP) | mean ± std | " + " | ".join(f"seed {s}" for s in seeds) + " |"
  lines = ["# COGMEN KD and masked training on the synthetic dialogues", "",
           f"Weighted F1 on the test dialogues, mean ± std (population) over {len(seeds)} seeds.",
           "A-only inference: the video columns of the input set to 0.", "", head,
           "|---|---:|---:|" + "---:|" * len(seeds)]
  for k, (name, _, _) in enumerate(ROWS):
    lines.append(f"| {name} | {PAPER[k]} | {v[:, k].mean():.3f} ± {v[:, k].std():.3f} | "
                 + " | ".join(f"{x:.3f}" for x in v[:, k]) + " |")
  lines += ["", "## Paired differences (per seed)", "",
            "| difference | mean ± std | seeds > 0 | " + " | ".join(f"seed {s}" for s in seeds)
            + " |", "|---|---:|---:|" + "---:|" * len(seeds)]
  for name, a, b in CLAIMS:
    d = v[:, a] - v[:, b]
    lines.append(f"| {name} | {d.mean():+.3f} ± {d.std():.3f} | {int((d > 0).sum())}/{len(d)} | "
                 + " | ".join(f"{x:+.3f}" for x in d) + " |")
  return "\n".join(lines) + "\n"


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--out", default=os.path.join("runs", "cogmen_synthetic"))
  p.add_argument("--seeds", default="0,1,2")
  p.add_argument("--epochs", type=int, default=0, help="override config.train.epochs")
  args = p.parse_args(argv)
  sys.path.insert(0, ROOT)
  from jaxser import io_utils, train
  from jaxser.config_utils import load_config_file
  values = {}
  for seed in (int(s) for s in args.seeds.split(",")):
    c = load_config_file(os.path.join(ROOT, "configs", "cogmen_synthetic.py"))
    c.seed = seed
    if args.epochs:
      c.train.epochs = args.epochs
    workdir = os.path.join(args.out, f"seed_{seed}")
    train.run(c, workdir, make_parents=True)
    results = {s: io_utils.read_json(os.path.join(workdir, "fold_0", s, "result.json"))
               for s in c.stage_order}
    values[seed] = [weighted_f1(results[stage], variant) for _, stage, variant in ROWS]
  text = table(values)
  io_utils.write_text(os.path.join(args.out, "table.md"), text)
  print(text)


if __name__ == "__main__":
  main()
