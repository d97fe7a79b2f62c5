"""The run report: per-fold and mean ± std metrics per stage, paired stage differences,
efficiency (parameters, MACs, latency), confusion matrices, protocol."""

from __future__ import annotations

import os

import numpy as np

from jaxser import io_utils
from jaxser import metrics as metrics_lib
from jaxser.config_utils import to_dict
from jaxser.errors import UserError


def protocol_label(folds) -> str:
  return ("speaker-independent" if all(f.speaker_independent for f in folds)
          else "speaker-dependent")


def _per_fold(groups, num_speakers: int) -> str:
  """Speakers per fold, e.g. 'one speaker per fold: 03, 08' or 'per fold: 03+08, 09+10'."""
  if all(len(g) == 1 for g in groups):
    return "one speaker per fold: " + ", ".join(g[0] for g in groups)
  return "per fold: " + ", ".join("+".join(g) if len(g) < num_speakers else
                                  f"all {num_speakers} speakers" for g in groups)


def protocol_section(config, corpus, folds) -> dict:
  """The protocol a reader needs to judge the figures: test and validation speakers per fold,
  input normalisation and best-epoch selection per stage, and whether any test speaker's
  audio entered a statistic ("speaker" normalisation: transductive)."""
  speaker = {u.id: u.speaker for u in corpus.utterances}
  stages = list(config.stage_order)
  norm = {s: (config.stages[s].get("input") or {}).get("normalization", "none") for s in stages}
  default = (config.get("train") or {}).get("select", "ua")  # trainer.fit's default
  select = {s: (config.stages[s].get("train") or {}).get("select") or default for s in stages}
  refit_default = bool((config.get("train") or {}).get("refit", False))
  refit = [s for s in stages
           if (config.stages[s].get("train") or {}).get("refit", refit_default)]
  return {"name": folds[0].protocol, "label": protocol_label(folds), "folds": len(folds),
          "test_speakers": [sorted({speaker[i] for i in f.test}) for f in folds],
          "valid_speakers": [sorted({speaker[i] for i in f.valid}) for f in folds],
          "normalization": norm, "select": select,
          "refit": refit,  # stages tested after retraining on training + validation speakers
          "transductive": any(v == "speaker" for v in norm.values())}


def _by_value(per_stage: dict) -> str:
  """'a, b x; c y' for {a: x, b: x, c: y}: stages grouped by their setting, in stage order."""
  groups: dict = {}
  for stage, value in per_stage.items():
    groups.setdefault(value, []).append(stage)
  return "; ".join(f"{', '.join(stages)} {value}" for value, stages in groups.items())


def _refit_clause(refit, num_stages: int) -> str:
  """The protocol line's words on `train.refit` (a list of stages; a bool in older reports)."""
  if not refit:
    return ""
  which = "" if refit is True or len(refit) == num_stages else f" ({', '.join(refit)})"
  return ("; tested model" + which +
          ": retrained on training + validation speakers for the chosen epochs")


def protocol_line(p: dict, num_speakers: int) -> str:
  """`protocol_section` in one line: the first line of every report."""
  return (f"Protocol: {p['name']} ({p['label']}, {p['folds']} folds); "
          f"test: {_per_fold(p['test_speakers'], num_speakers)}; "
          f"validation: {_per_fold(p['valid_speakers'], num_speakers)}; input normalisation: "
          + _by_value(p["normalization"]) + "; best epoch by validation: "
          + _by_value(p["select"])
          + _refit_clause(p.get("refit"), len(p["normalization"]))
          + f"; transductive: {'yes' if p['transductive'] else 'no'}")


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


def paired_differences(results, folds, a: str, b: str) -> dict:
  """Per-fold test differences a − b of UA and WA, their mean ± std and the folds a > b."""
  per_fold = {f.name: {m: results[f.name][a]["test"][m] - results[f.name][b]["test"][m]
                       for m in ("ua", "wa")} for f in folds}
  out = {"a": a, "b": b, "folds": len(folds), "per_fold": per_fold}
  for m in ("ua", "wa"):
    diffs = [d[m] for d in per_fold.values()]
    mean, std = metrics_lib.mean_std(diffs)
    out[m] = {"mean": mean, "std": std, "a_better": int(sum(d > 0 for d in diffs)),
              "b_better": int(sum(d < 0 for d in diffs)), **paired_tests(diffs)}
  return out


def paired_tests(diffs) -> dict:
  """Two-sided paired tests of per-fold differences against 0: Student's t (`t`, `p_t`) and
  the Wilcoxon signed-rank test (`p_wilcoxon`; zero differences dropped, exact for small
  samples). None where a test is undefined (fewer than 2 folds, all differences equal)."""
  from scipy import stats
  d = np.asarray(diffs, np.float64)
  out = {"t": None, "p_t": None, "p_wilcoxon": None}
  if len(d) >= 2 and np.ptp(d) > 0:
    t = stats.ttest_1samp(d, 0.0)
    out.update(t=float(t.statistic), p_t=float(t.pvalue))
  if np.count_nonzero(d) >= 1 and len(d) >= 2:
    out["p_wilcoxon"] = float(stats.wilcoxon(d, zero_method="wilcox").pvalue)
  return out


def averaged_rows(config) -> dict[str, tuple[str, ...]]:
  """`config.report.averaged_rows`, {row: its stages}: a row whose per-fold test metrics are
  the mean over several stages, e.g. one model under several training seeds (`train.seed`),
  so that a comparison is not decided by one seed. A row's name may stand in
  `report.compare`."""
  rows = {str(k): tuple(v) for k, v in
          ((config.get("report", {}) or {}).get("averaged_rows", {}) or {}).items()}
  for row, stages in rows.items():
    if row in config.stages or not stages or any(s not in config.stages for s in stages):
      raise UserError(f"config.report.averaged_rows.{row} must name a row that is not a stage "
                      f"and map it to stages of config.stages ({sorted(config.stages)}), e.g. "
                      "student_alone_seeds=('student_alone', 'student_alone_seed1')")
  return rows


def _runs(config, rows: dict, name: str) -> bool:
  """Whether stage or averaged row `name` (of `rows`) is in this run (its stages in
  config.stage_order)."""
  return all(s in config.stage_order for s in rows.get(name, (name,)))


def compare_pairs(config, skipped: bool = False) -> list[tuple[str, str]]:
  """`config.report.compare` as (a, b) pairs of stages or `averaged_rows`, those that run
  (with `skipped`: those that do not).

  A pair naming neither a stage of config.stages nor an averaged row is an error; a pair
  with a stage left out of `config.stage_order` (a run of a subset of stages) is skipped.
  """
  pairs = [tuple(p) for p in (config.get("report", {}) or {}).get("compare", ()) or ()]
  rows = averaged_rows(config)
  for p in pairs:
    if len(p) != 2 or any(s not in config.stages and s not in rows for s in p):
      raise UserError(f"config.report.compare entry {p} must be a pair of stages of "
                      f"config.stages ({sorted(config.stages)}) or rows of "
                      f"config.report.averaged_rows ({sorted(rows)}), e.g. "
                      "('student_kd', 'student_alone')")
  return [p for p in pairs if all(_runs(config, rows, s) for s in p) != skipped]


def averaged_section(config, results, folds) -> tuple[dict, dict]:
  """(report section, results with the rows added) of the `averaged_rows` that run: per fold
  the mean and the spread (population std, min, max) of the row's stages' test UA / WA."""
  section, merged = {}, {f.name: dict(results[f.name]) for f in folds}
  rows = averaged_rows(config)
  for row, stages in rows.items():
    if not _runs(config, rows, row):
      continue
    per_fold = {}
    for f in folds:
      values = {m: np.asarray([results[f.name][s]["test"][m] for s in stages], np.float64)
                for m in ("ua", "wa")}
      per_fold[f.name] = {m: float(v.mean()) for m, v in values.items()}
      per_fold[f.name].update({f"{m}_{stat}": float(getattr(v, stat)())
                               for m, v in values.items() for stat in ("std", "min", "max")})
      merged[f.name][row] = {"test": {m: per_fold[f.name][m] for m in ("ua", "wa")}}
    section[row] = {"stages": list(stages), "per_fold": per_fold, **{
        m: dict(zip(("mean", "std"), metrics_lib.mean_std(d[m] for d in per_fold.values())))
        for m in ("ua", "wa")}, "within_fold_std": {
        m: metrics_lib.mean_std(d[f"{m}_std"] for d in per_fold.values())[0]
        for m in ("ua", "wa")}}
  return section, merged


def latency_repeats(config) -> int:
  """`config.report.latency_repeats` (default 100; 0 skips the efficiency table)."""
  return int((config.get("report", {}) or {}).get("latency_repeats", 100))


def file_stem(config) -> str:
  """`config.report.file`, the report files' name (default "report"): variants that run
  other stages of one config in a shared run directory give their reports their own names."""
  return str((config.get("report", {}) or {}).get("file", "report"))


def confusion_file(stem: str, stage: str) -> str:
  """A stage's pooled confusion-matrix image, named by its report so that variants sharing a
  run directory do not overwrite each other's (they may cover other folds)."""
  return f"{stem}_confusion_{stage}.png"


def teacher_stages(config) -> list[str]:
  """Stages some other stage distils from, in stage order."""
  used = {t for s in config.stage_order for t in config.stages[s].get("teachers", ())}
  return [s for s in config.stage_order if s in used]


def efficiency_section(config, efficiency: dict) -> dict:
  """Per-stage params / MACs / latency, total_ms (features + model) and, for each teacher,
  the ratio teacher / stage of total_ms."""
  teachers = [t for t in teacher_stages(config) if t in efficiency]
  total = {s: e["latency_ms"] + (e.get("feature_ms") or 0.0) for s, e in efficiency.items()}
  out = {}
  for stage, e in efficiency.items():
    out[stage] = dict(e, total_ms=total[stage])
    out[stage]["latency_ratio"] = {t: total[t] / total[stage] for t in teachers if t != stage}
  return out


def stage_summary(results, folds, stage: str, class_names) -> dict:
  """A stage's test metrics over folds (mean, std), pooled confusion and recalls, fit and
  parameter count."""
  rows = [results[f.name][stage]["test"] for f in folds]
  summary = {m: dict(zip(("mean", "std"), metrics_lib.mean_std(r[m] for r in rows)))
             for m in metrics_lib.NAMES}
  cm = np.sum([r["confusion"] for r in rows], axis=0)
  summary["confusion"] = cm.tolist()
  summary["pooled"] = metrics_lib.from_confusion(cm)
  summary["recall"] = dict(zip(class_names, metrics_lib.recalls(cm)))
  fits = [results[f.name][stage].get("train_fit") for f in folds]
  if all(fits):  # results written before train_fit was recorded have none
    summary["fit"] = {
        "train_ua": metrics_lib.mean_std(x["ua"] for x in fits)[0],
        "train_loss": metrics_lib.mean_std(x["loss"] for x in fits)[0],
        "valid_loss": metrics_lib.mean_std(results[f.name][stage]["valid"]["loss"]
                                           for f in folds)[0],
        "best_epoch": metrics_lib.mean_std(results[f.name][stage]["best_epoch"] + 1
                                           for f in folds)[0]}
  before = [(results[f.name][stage].get("refit") or {}).get("selected_test") for f in folds]
  if all(before):  # refit stages (those written since refit.selected_test was recorded)
    summary["refit"] = {}
    for m in ("ua", "wa"):
      gains = [r[m] - b[m] for r, b in zip(rows, before)]
      mean, std = metrics_lib.mean_std(gains)
      summary["refit"][m] = {"before": metrics_lib.mean_std(b[m] for b in before)[0],
                             "gain": {"mean": mean, "std": std,
                                      "better": int(sum(g > 0 for g in gains)),
                                      **paired_tests(gains)}}
  summary["params"] = results[folds[0].name][stage]["params"]
  return summary


def write(workdir, config, corpus, folds, results, seconds: float = 0.0,
          efficiency: dict | None = None, stem: str | None = None) -> dict:
  """Writes <stem>.json, <stem>.md (default `file_stem`) and confusion PNGs under `workdir`;
  returns the report.

  `efficiency` (optional): stage -> {'params', 'macs', 'latency_ms', 'input_shape'}, as
  `jaxser.profile.efficiency` measures it.
  """
  stem = stem or file_stem(config)
  stages = list(config.stage_order)
  pairs = compare_pairs(config)
  summary, per_fold = {}, {}
  for stage in stages:
    summary[stage] = stage_summary(results, folds, stage, corpus.class_names)
    per_fold[stage] = {f.name: {m: results[f.name][stage]["test"][m] for m in metrics_lib.NAMES}
                       for f in folds}
    plot_confusion(np.asarray(summary[stage]["confusion"]), corpus.class_names,
                   f"{config.name}: {stage} (all folds)",
                   os.path.join(workdir, confusion_file(stem, stage)))
  # Results written before train_seconds was recorded give their last run's wall time.
  train_seconds = sum(r.get("train_seconds", r.get("seconds", 0.0))
                      for f in folds for r in (results[f.name][s] for s in stages))
  protocol = protocol_section(config, corpus, folds)
  averaged, with_rows = averaged_section(config, results, folds)
  rep = {
      "protocol_line": protocol_line(protocol, len(corpus.speakers)),
      "name": config.name, "method": config.method, "protocol": protocol,
      "corpus": {"name": corpus.name, "utterances": len(corpus.utterances),
                 "speakers": len(corpus.speakers), "classes": list(corpus.class_names),
                 "class_counts": corpus.class_counts(), "skipped": dict(corpus.skipped),
                 **_bad_files(config, corpus)},
      "stages": stages, "summary": summary, "per_fold": per_fold,
      "averaged": averaged,
      "compare": [paired_differences(with_rows, folds, a, b) for a, b in pairs],
      "compare_skipped": [list(p) for p in compare_pairs(config, skipped=True)],
      "efficiency": efficiency_section(config, efficiency) if efficiency else {},
      "noisy": noise_grid(results, folds, stages),
      "noisy_compare": [d for a, b in pairs if (d := noisy_differences(with_rows, folds, a, b))],
      "test_inputs": test_inputs_section(results, folds, stages),
      "seconds": round(seconds, 1), "train_seconds": round(train_seconds, 1),
      "config": to_dict(config),
  }
  io_utils.write_json(os.path.join(workdir, stem + ".json"), rep)
  io_utils.write_text(os.path.join(workdir, stem + ".md"), markdown(rep))
  return rep


def test_inputs_section(results, folds, stages) -> dict:
  """{stage: {variant: {metric: {mean, std}}}} of stages also tested on changed inputs
  (`stages.<name>.test_inputs`)."""
  out = {}
  for stage in stages:
    runs = [results[f.name][stage].get("test_inputs") or {} for f in folds]
    for variant in runs[0]:
      out.setdefault(stage, {})[variant] = {
          m: dict(zip(("mean", "std"), metrics_lib.mean_std(r[variant][m] for r in runs)))
          for m in metrics_lib.NAMES}
  return out


def _test_inputs_lines(rep) -> list[str]:
  if not rep.get("test_inputs"):
    return []
  lines = ["", "## Tested on changed inputs (stages.<name>.test_inputs), mean ± std over "
           "folds (%)", "", "| stage [inputs] | " + " | ".join(metrics_lib.NAMES) + " |",
           "|---|" + "---:|" * len(metrics_lib.NAMES)]
  for stage, variants in rep["test_inputs"].items():
    for variant, s in variants.items():
      lines.append(f"| {stage} [{variant}] | "
                   + " | ".join(_pm(s[m]) for m in metrics_lib.NAMES) + " |")
  return lines


def _bad_files(config, corpus) -> dict:
  """{"bad_files": {file under corpus.manual_dir: reason}} for the unusable audio files a run
  left out (--skip_bad_files); {} when there were none, as in reports from before."""
  if not corpus.bad_files:
    return {}
  root = os.path.expanduser(str(config.corpus.get("manual_dir") or "/"))
  return {"bad_files": {os.path.relpath(p, root): r for p, r in sorted(corpus.bad_files.items())}}


# Report fields that measure time, which no two runs share; everything else is determined by
# the config, the corpus and the seed (scripts/kill_resume.py, tests/test_robustness.py).
TIMING_KEYS = frozenset({"seconds", "train_seconds", "latency_ms", "feature_ms", "total_ms",
                         "latency_ratio"})


def without_timing(rep):
  """`rep` (a report, or any part of one) without its TIMING_KEYS fields, at every depth."""
  if isinstance(rep, dict):
    return {k: without_timing(v) for k, v in rep.items() if k not in TIMING_KEYS}
  if isinstance(rep, list):
    return [without_timing(v) for v in rep]
  return rep


def noise_grid(results, folds, stages) -> dict:
  """stage -> condition ("white@0", ...) -> mean ± std UA and WA over folds, for stages
  evaluated on the noisy test grid (config.eval_noise)."""
  out = {}
  for stage in stages:
    grids = [results[f.name][stage].get("noisy") or {} for f in folds]
    if not all(grids):
      continue
    out[stage] = {c: {m: dict(zip(("mean", "std"),
                                  metrics_lib.mean_std(g[c][m] for g in grids)))
                      for m in ("ua", "wa")} for c in grids[0]}
  return out


def noisy_differences(results, folds, a: str, b: str) -> dict | None:
  """Per-fold UA differences a − b on the noisy test grid, per SNR (the mean over noise types)
  and over every noisy condition, with paired tests; None unless both stages have the grid."""
  grids = {s: [results[f.name][s].get("noisy") or {} for f in folds] for s in (a, b)}
  if not (all(grids[a]) and all(grids[b])):
    return None
  cells = list(grids[a][0])
  snrs = sorted({c.split("@")[1] for c in cells}, key=float)
  groups = {f"{snr} dB": [c for c in cells if c.split("@")[1] == snr] for snr in snrs}
  groups["all noisy"] = cells
  rows = {}
  for label, group in groups.items():
    diffs = [float(np.mean([ga[c]["ua"] - gb[c]["ua"] for c in group]))
             for ga, gb in zip(grids[a], grids[b])]
    mean, std = metrics_lib.mean_std(diffs)
    rows[label] = {"per_fold": dict(zip((f.name for f in folds), diffs)), "mean": mean,
                   "std": std, "a_better": int(sum(d > 0 for d in diffs)), **paired_tests(diffs)}
  return {"a": a, "b": b, "folds": len(folds), "rows": rows}


def _noisy_compare_lines(rep) -> list[str]:
  lines = []
  for c in rep.get("noisy_compare") or []:
    lines += ["", f"**{c['a']} − {c['b']}** on noisy test speech: UA difference per fold "
              "averaged over the noise types of each SNR (percentage points)", "",
              "| SNR | mean ± std | folds a > b | p (t-test) | p (Wilcoxon) |",
              "|---|---:|---:|---:|---:|"]
    for label, r in c["rows"].items():
      lines.append(f"| {label} | {_signed_pm(r)} | {r['a_better']}/{c['folds']} | "
                   f"{_number(r['p_t'])} | {_number(r['p_wilcoxon'])} |")
  return lines


def _noise_lines(rep) -> list[str]:
  grid = rep.get("noisy") or {}
  if not grid:
    return []
  lines = ["", "## Noisy test speech: mean UA over folds (%)", "",
           "Every test utterance mixed with each noise type at each SNR (fixed seeds); "
           "`clean` repeats the test UA above."]
  for stage, cells in grid.items():
    types = list(dict.fromkeys(c.split("@")[0] for c in cells))
    snrs = list(dict.fromkeys(c.split("@")[1] for c in cells))
    clean = rep["summary"][stage]["ua"]["mean"]
    lines += ["", f"**{stage}** (clean: {100 * clean:.2f})", "",
              "| SNR (dB) | " + " | ".join(types) + " |", "|---|" + "---:|" * len(types)]
    for snr in sorted(snrs, key=float):
      lines.append(f"| {snr} | " + " | ".join(
          f"{100 * cells[f'{t}@{snr}']['ua']['mean']:.2f}" for t in types) + " |")
  return lines + _noisy_compare_lines(rep)


def _pm(s) -> str:
  return f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f}"


def _signed_pm(s) -> str:
  return f"{100 * s['mean']:+.2f} ± {100 * s['std']:.2f}"


def _efficiency_lines(rep) -> list[str]:
  eff = rep.get("efficiency") or {}
  if not eff:
    return []
  teachers = sorted({t for e in eff.values() for t in e["latency_ratio"]},
                    key=rep["stages"].index)
  device = next(iter(eff.values())).get("device", "")
  lines = ["", f"## Efficiency: one clip, batch 1{', ' + device if device else ''}", "",
           "MACs are XLA's counted flops / 2 of the jitted inference function and model "
           "latency the median wall time of repeated jitted calls after a warm-up; both cover "
           "the model on its input array. Features: mean host time per clip to make that array "
           "from raw audio (normalisation, filterbanks, eGeMAPS, frozen encoders). A model on "
           "frozen Whisper features counts the encoder layers that made them in its params and "
           "MACs (their time is in its features). Ratios compare totals.",
           "",
           "| stage | input | params | MACs (M) | features (ms) | model (ms) | total (ms) | "
           + " | ".join(f"{t} / stage" for t in teachers) + (" |" if teachers else ""),
           "|---|---|---:|---:|---:|---:|---:|" + "---:|" * len(teachers)]
  for stage in rep["stages"]:
    if stage not in eff:
      continue
    e = eff[stage]
    ratios = [f"{e['latency_ratio'][t]:.3g}×" if t in e["latency_ratio"] else "—"
              for t in teachers]
    features = "—" if e.get("feature_ms") is None else f"{e['feature_ms']:.3f}"
    lines.append(f"| {stage} | {'×'.join(map(str, e.get('input_shape', [])))} | "
                 f"{e['params']:,} | {e['macs'] / 1e6:.2f} | {features} | {e['latency_ms']:.3f} | "
                 f"{e['total_ms']:.3f} | " + " | ".join(ratios) + (" |" if ratios else ""))
  return lines


def _compare_lines(rep) -> list[str]:
  lines = []
  if rep.get("compare_skipped"):  # a run of a subset of stages: say what it leaves out
    lines = ["", "Not compared (a stage not in `config.stage_order`): " + ", ".join(
        f"{a} − {b}" for a, b in rep["compare_skipped"]) + "."]
  if not rep.get("compare"):
    return lines
  lines += ["", "## Paired differences on the test folds (percentage points)", "",
           "| fold | " + " | ".join(f"{c['a']} − {c['b']} UA | {c['a']} − {c['b']} WA"
                                    for c in rep["compare"]) + " |",
           "|---|" + "---:|---:|" * len(rep["compare"])]
  for fold in rep["compare"][0]["per_fold"]:
    lines.append(f"| {fold} | " + " | ".join(
        f"{100 * c['per_fold'][fold]['ua']:+.2f} | {100 * c['per_fold'][fold]['wa']:+.2f}"
        for c in rep["compare"]) + " |")
  lines.append("| mean ± std | " + " | ".join(f"{_signed_pm(c['ua'])} | {_signed_pm(c['wa'])}"
                                               for c in rep["compare"]) + " |")
  lines.append("| folds a > b | " + " | ".join(
      f"{c['ua']['a_better']}/{c['folds']} | {c['wa']['a_better']}/{c['folds']}"
      for c in rep["compare"]) + " |")
  for key, label in (("t", "paired t"), ("p_t", "p (t-test)"), ("p_wilcoxon", "p (Wilcoxon)")):
    if all(key in c["ua"] for c in rep["compare"]):  # older reports lack the tests
      lines.append(f"| {label} | " + " | ".join(
          f"{_number(c['ua'][key])} | {_number(c['wa'][key])}" for c in rep["compare"]) + " |")
  lines.append("")
  lines.append("Two-sided tests of the per-fold differences against 0.")
  return lines


def _number(value) -> str:
  return "—" if value is None else f"{value:.3g}"


def _fit_lines(rep) -> list[str]:
  """How each stage fit: the tested model on its own training utterances, its validation loss."""
  stages = [s for s in rep["stages"] if "fit" in rep["summary"][s]]
  if not stages:
    return []
  lines = ["", "## Fit, mean over folds", "",
           "The tested model on its training speakers' utterances (clean, evaluated as the test "
           "set is), and the validation loss of the selected epoch.", "",
           "| stage | training UA (%) | training loss | validation loss | selected epoch |",
           "|---|---:|---:|---:|---:|"]
  for stage in stages:
    f = rep["summary"][stage]["fit"]
    lines.append(f"| {stage} | {100 * f['train_ua']:.2f} | {f['train_loss']:.3f} | "
                 f"{f['valid_loss']:.3f} | {f['best_epoch']:.1f} |")
  return lines


def _refit_lines(rep) -> list[str]:
  """What the refit changed in each refit stage: the chosen checkpoint's test UA / WA before
  it, paired over folds with the tested (refit) model's."""
  stages = [s for s in rep["stages"] if "refit" in rep["summary"][s]]
  if not stages:
    return []
  lines = ["", "## Refit, mean over folds (%)", "",
           "Test metrics of the checkpoint validation chose (trained on the training speakers) "
           "and of the tested model, refit on the training + validation speakers for that many "
           "epochs; the gain is paired over folds (two-sided tests against 0).", "",
           "| stage | UA before | UA refit | UA gain | folds better | p (t) | p (Wilcoxon) | "
           "WA before | WA refit | WA gain |", "|---|" + "---:|" * 9]
  for stage in stages:
    s = rep["summary"][stage]
    ua, wa = s["refit"]["ua"], s["refit"]["wa"]
    lines.append(
        f"| {stage} | {100 * ua['before']:.2f} | {100 * s['ua']['mean']:.2f} | "
        f"{100 * ua['gain']['mean']:+.2f} ± {100 * ua['gain']['std']:.2f} | "
        f"{ua['gain']['better']}/{rep['protocol']['folds']} | {_number(ua['gain']['p_t'])} | "
        f"{_number(ua['gain']['p_wilcoxon'])} | {100 * wa['before']:.2f} | "
        f"{100 * s['wa']['mean']:.2f} | {100 * wa['gain']['mean']:+.2f} |")
  return lines


def _averaged_lines(rep) -> list[str]:
  """The averaged rows: their stages' per-fold mean over folds, and how far the stages of one
  row lie apart within a fold."""
  rows = rep.get("averaged") or {}
  if not rows:
    return []
  lines = ["", "## Averaged rows, mean ± std over folds (%)", "",
           "Each row's per-fold figure is the mean of its stages' test metrics (one model under "
           "several training seeds); the spread is the population std over its stages within a "
           "fold, averaged over folds.", "",
           "| row | stages | UA | WA | UA spread within a fold | WA spread within a fold |",
           "|---|---|---:|---:|---:|---:|"]
  for row, r in rows.items():
    lines.append(f"| {row} | {', '.join(r['stages'])} | {_pm(r['ua'])} | {_pm(r['wa'])} | "
                 f"{100 * r['within_fold_std']['ua']:.2f} | "
                 f"{100 * r['within_fold_std']['wa']:.2f} |")
  lines += ["", "| fold | " + " | ".join(f"{row} UA (min–max)" for row in rows) + " |",
            "|---|" + "---:|" * len(rows)]
  for fold in next(iter(rows.values()))["per_fold"]:
    lines.append(f"| {fold} | " + " | ".join(
        f"{100 * d['ua']:.2f} ({100 * d['ua_min']:.2f}–{100 * d['ua_max']:.2f})"
        for d in (r["per_fold"][fold] for r in rows.values())) + " |")
  return lines


def _recall_lines(rep) -> list[str]:
  """Per-class recall of every stage, all folds pooled (the confusion matrices' diagonals)."""
  if not all("recall" in rep["summary"][s] for s in rep["stages"]):
    return []
  classes = list(rep["summary"][rep["stages"][0]]["recall"])
  lines = ["", "## Recall per class, all folds pooled (%)", "",
           "| stage | " + " | ".join(classes) + " |", "|---|" + "---:|" * len(classes)]
  for stage in rep["stages"]:
    r = rep["summary"][stage]["recall"]
    lines.append(f"| {stage} | " + " | ".join(f"{100 * r[c]:.1f}" for c in classes) + " |")
  return lines


def markdown(rep) -> str:
  c = rep["corpus"]
  lines = [
      rep["protocol_line"], "",
      f"# {rep['name']} — {rep['method']}", "",
      f"- Corpus: **{c['name']}**, {c['utterances']} utterances, {c['speakers']} speakers, "
      f"classes {', '.join(f'{k} ({v})' for k, v in c['class_counts'].items())}",
      "- Skipped utterances: " + (", ".join(f"{k}: {v}" for k, v in c["skipped"].items())
                                  or "none"),
      *(["- Unusable audio files left out (--skip_bad_files): " + ", ".join(
          f"{k} ({v})" for k, v in c["bad_files"].items())] if c.get("bad_files") else []),
      f"- Protocol: **{rep['protocol']['name']}**, {rep['protocol']['folds']} folds, "
      f"**{rep['protocol']['label']}**",
      f"- Time: {rep['train_seconds'] / 3600:.2f} h in training epochs, summed over stages and "
      f"folds; this invocation {rep['seconds']} s", "",
      "## Test results, mean ± std over folds (%)", "",
      "UA is the macro recall (mean of per-class recalls); WA is the accuracy. Every std in "
      "this report is the population std over folds (ddof 0).", "",
      "| stage | params | UA (macro recall) | WA (accuracy) | macro precision | macro-F1 | "
      "weighted-F1 |", "|---|---:|---:|---:|---:|---:|---:|",
  ]
  for stage in rep["stages"]:
    s = rep["summary"][stage]
    lines.append(f"| {stage} | {s['params']:,} | "
                 + " | ".join(_pm(s[m]) for m in metrics_lib.NAMES) + " |")
  lines += _averaged_lines(rep)
  lines += _recall_lines(rep)
  lines += _fit_lines(rep)
  lines += _refit_lines(rep)
  lines += _compare_lines(rep)
  lines += _efficiency_lines(rep)
  lines += _noise_lines(rep)
  lines += _test_inputs_lines(rep)
  lines += ["", "## UA / WA per fold (%)", "",
            "| fold | " + " | ".join(f"{s} UA | {s} WA" for s in rep["stages"]) + " |",
            "|---|" + "---:|---:|" * len(rep["stages"])]
  for fold in rep["per_fold"][rep["stages"][0]]:
    lines.append(f"| {fold} | " + " | ".join(
        f"{100 * rep['per_fold'][s][fold]['ua']:.2f} | {100 * rep['per_fold'][s][fold]['wa']:.2f}"
        for s in rep["stages"]) + " |")
  lines += ["", "## Confusion matrices (all folds pooled)", ""]
  stem = file_stem(rep["config"])
  lines += [f"![{s}]({confusion_file(stem, s)})" for s in rep["stages"]]
  return "\n".join(lines) + "\n"


def summary(rep) -> str:
  """A few lines for the terminal: mean UA/WA per stage."""
  out = [f"{rep['name']} ({rep['protocol']['name']}, {rep['protocol']['label']}, "
         f"{rep['protocol']['folds']} folds):"]
  for stage in rep["stages"]:
    s = rep["summary"][stage]
    out.append(f"  {stage:<16} UA {_pm(s['ua'])}   WA {_pm(s['wa'])}")
  for row, r in (rep.get("averaged") or {}).items():
    out.append(f"  {row:<16} UA {_pm(r['ua'])}   WA {_pm(r['wa'])} (mean of {len(r['stages'])} "
               f"stages per fold; spread within a fold {100 * r['within_fold_std']['ua']:.2f})")
  for c in rep.get("compare", []):
    out.append(f"  {c['a']} − {c['b']}: UA {_signed_pm(c['ua'])} "
               f"({c['a']} ahead in {c['ua']['a_better']}/{c['folds']} folds"
               + (f"; p = {_number(c['ua']['p_t'])} t-test, {_number(c['ua']['p_wilcoxon'])} "
                  "Wilcoxon" if "p_t" in c["ua"] else "") + f"), WA {_signed_pm(c['wa'])}")
  for c in rep.get("noisy_compare") or []:
    lowest = next(iter(c["rows"]))  # rows run from the lowest SNR up
    low, every = c["rows"][lowest], c["rows"]["all noisy"]
    out.append(f"  {c['a']} − {c['b']} on noisy speech: UA {_signed_pm(every)} over all "
               f"conditions (p = {_number(every['p_t'])} t-test), at "
               f"{lowest} {_signed_pm(low)} (p = {_number(low['p_t'])})")
  for stage, e in (rep.get("efficiency") or {}).items():
    ratios = ", ".join(f"{t} / this {r:.3g}×" for t, r in e["latency_ratio"].items())
    out.append(f"  {stage:<16} {e['params']:,} params, {e['macs'] / 1e6:.1f} M MACs, "
               f"model {e['latency_ms']:.2f} ms, with features {e['total_ms']:.2f} ms"
               + (f" ({ratios})" if ratios else ""))
  return "\n".join(out)
