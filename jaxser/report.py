"""The run report: per-fold and mean ± std metrics per stage, confusion matrices, protocol."""

from __future__ import annotations

import os

import numpy as np

from jaxser import io_utils
from jaxser import metrics as metrics_lib
from jaxser.config_utils import to_dict

METRICS = ("ua", "wa", "macro_f1", "weighted_f1")


def protocol_label(folds) -> str:
  return ("speaker-independent" if all(f.speaker_independent for f in folds)
          else "speaker-dependent")


def plot_confusion(cm, class_names, title: str, path: str):
  """Row-normalised confusion matrix with counts, saved as PNG (atomically)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  cm = np.asarray(cm, np.float64)
  norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
  n = len(class_names)
  fig, ax = plt.subplots(figsize=(1.2 * n + 2, 1.2 * n + 1.5))
  ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
  for i in range(n):
    for j in range(n):
      ax.text(j, i, f"{norm[i, j]:.2f}\n({int(cm[i, j])})", ha="center", va="center",
              color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
  ax.set_xticks(range(n), class_names, rotation=45, ha="right")
  ax.set_yticks(range(n), class_names)
  ax.set_xlabel("predicted")
  ax.set_ylabel("true")
  ax.set_title(title)
  fig.tight_layout()
  with io_utils.atomic_path(path) as tmp:
    fig.savefig(tmp, format="png", dpi=100)
  plt.close(fig)


def write(workdir, config, corpus, folds, results, seconds: float = 0.0) -> dict:
  """Writes report.json, report.md and confusion PNGs under `workdir`; returns the report."""
  stages = list(config.stage_order)
  summary, per_fold = {}, {}
  for stage in stages:
    rows = [results[f.name][stage]["test"] for f in folds]
    summary[stage] = {m: dict(zip(("mean", "std"), metrics_lib.mean_std(r[m] for r in rows)))
                      for m in METRICS}
    cm = np.sum([r["confusion"] for r in rows], axis=0)
    summary[stage]["confusion"] = cm.tolist()
    summary[stage]["pooled"] = metrics_lib.from_confusion(cm)
    summary[stage]["params"] = results[folds[0].name][stage]["params"]
    per_fold[stage] = {f.name: {m: results[f.name][stage]["test"][m] for m in METRICS}
                       for f in folds}
    plot_confusion(cm, corpus.class_names, f"{config.name}: {stage} (all folds)",
                   os.path.join(workdir, f"confusion_{stage}.png"))
  rep = {
      "name": config.name, "method": config.method,
      "protocol": {"name": folds[0].protocol, "label": protocol_label(folds),
                   "folds": len(folds)},
      "corpus": {"name": corpus.name, "utterances": len(corpus.utterances),
                 "speakers": len(corpus.speakers), "classes": list(corpus.class_names),
                 "class_counts": corpus.class_counts(), "skipped": dict(corpus.skipped)},
      "stages": stages, "summary": summary, "per_fold": per_fold,
      "seconds": round(seconds, 1), "config": to_dict(config),
  }
  io_utils.write_json(os.path.join(workdir, "report.json"), rep)
  io_utils.write_text(os.path.join(workdir, "report.md"), markdown(rep))
  return rep


def _pm(s) -> str:
  return f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f}"


def markdown(rep) -> str:
  c = rep["corpus"]
  lines = [
      f"# {rep['name']} — {rep['method']}", "",
      f"- Corpus: **{c['name']}**, {c['utterances']} utterances, {c['speakers']} speakers, "
      f"classes {', '.join(f'{k} ({v})' for k, v in c['class_counts'].items())}",
      f"- Skipped utterances: " + (", ".join(f"{k}: {v}" for k, v in c["skipped"].items())
                                   or "none"),
      f"- Protocol: **{rep['protocol']['name']}**, {rep['protocol']['folds']} folds, "
      f"**{rep['protocol']['label']}**", f"- Wall time: {rep['seconds']} s", "",
      "## Test results, mean ± std over folds (%)", "",
      "| stage | params | UA | WA | macro-F1 | weighted-F1 |", "|---|---:|---:|---:|---:|---:|",
  ]
  for stage in rep["stages"]:
    s = rep["summary"][stage]
    lines.append(f"| {stage} | {s['params']:,} | " + " | ".join(_pm(s[m]) for m in METRICS) + " |")
  lines += ["", "## UA per fold (%)", "",
            "| fold | " + " | ".join(rep["stages"]) + " |",
            "|---|" + "---:|" * len(rep["stages"])]
  for fold in rep["per_fold"][rep["stages"][0]]:
    lines.append(f"| {fold} | " + " | ".join(f"{100 * rep['per_fold'][s][fold]['ua']:.2f}"
                                             for s in rep["stages"]) + " |")
  lines += ["", "## Confusion matrices (all folds pooled)", ""]
  lines += [f"![{s}](confusion_{s}.png)" for s in rep["stages"]]
  return "\n".join(lines) + "\n"


def summary(rep) -> str:
  """A few lines for the terminal: mean UA/WA per stage."""
  out = [f"{rep['name']} ({rep['protocol']['name']}, {rep['protocol']['label']}, "
         f"{rep['protocol']['folds']} folds):"]
  for stage in rep["stages"]:
    s = rep["summary"][stage]
    out.append(f"  {stage:<16} UA {_pm(s['ua'])}   WA {_pm(s['wa'])}")
  return "\n".join(out)
