"""The run report on hand-made results: metric tables, paired stage differences, efficiency."""

from __future__ import annotations

import json

import ml_collections
import numpy as np
import pytest
from scipy import stats

from jaxser import report
from jaxser.data.corpus import Corpus, Utterance
from jaxser.data.folds import Fold
from jaxser.errors import UserError

STAGES = ("teacher", "student_alone", "student_kd")
# Per fold and stage: (UA, WA, macro precision); chosen so the differences are easy by hand.
SCORES = {
    "fold_0": {"teacher": (0.70, 0.75, 0.72), "student_alone": (0.40, 0.45, 0.41),
               "student_kd": (0.50, 0.50, 0.52)},
    "fold_1": {"teacher": (0.80, 0.85, 0.81), "student_alone": (0.65, 0.60, 0.66),
               "student_kd": (0.60, 0.70, 0.61)},
    "fold_2": {"teacher": (0.60, 0.65, 0.62), "student_alone": (0.50, 0.55, 0.51),
               "student_kd": (0.70, 0.55, 0.71)},
}


def _config(compare=(("student_kd", "student_alone"), ("teacher", "student_kd"))):
  c = ml_collections.ConfigDict()
  c.name, c.method, c.seed = "hand", "litecnn_kd", 0
  c.stage_order = STAGES
  c.stages = ml_collections.ConfigDict({
      "teacher": dict(teachers=()), "student_alone": dict(teachers=()),
      "student_kd": dict(teachers=("teacher",))})
  c.report = dict(compare=compare, latency_repeats=3)
  return c


def _inputs():
  corpus = Corpus("hand", ("a", "b"), 16000,
                  [Utterance(f"u{i}", f"s{i % 3}", i % 2) for i in range(6)])
  folds = [Fold(f"fold_{k}", ("u0",), ("u1",), ("u2",), "leave_one_speaker_out", True)
           for k in range(3)]
  results = {}
  for fold, stages in SCORES.items():
    results[fold] = {}
    for stage, (ua, wa, prec) in stages.items():
      test = {"ua": ua, "wa": wa, "macro_precision": prec, "macro_f1": 0.5, "weighted_f1": 0.5,
              "confusion": [[3, 1], [1, 3]]}
      results[fold][stage] = {"test": test, "params": 1000 if stage == "teacher" else 100,
                              "seconds": 5.0, "train_seconds": 10.0}
  del results["fold_2"]["teacher"]["train_seconds"]  # a result from before it was recorded
  return corpus, folds, results


EFFICIENCY = {
    "teacher": {"params": 1000, "macs": 5e8, "latency_ms": 8.0, "feature_ms": 2.0,
                "input_shape": [16000],
                "device": "cpu"},
    "student_alone": {"params": 100, "macs": 1e8, "latency_ms": 2.0, "input_shape": [16000],
                      "device": "cpu"},
    "student_kd": {"params": 100, "macs": 1e8, "latency_ms": 2.5, "input_shape": [16000],
                   "device": "cpu"},
}


def test_paired_differences_by_hand(tmp_path):
  corpus, folds, results = _inputs()
  rep = report.write(str(tmp_path), _config(), corpus, folds, results, seconds=1.0,
                     efficiency=EFFICIENCY)
  kd_vs_alone, teacher_vs_kd = rep["compare"]
  assert (kd_vs_alone["a"], kd_vs_alone["b"], kd_vs_alone["folds"]) == ("student_kd",
                                                                         "student_alone", 3)
  ua = [0.10, -0.05, 0.20]
  wa = [0.05, 0.10, 0.00]
  np.testing.assert_allclose([kd_vs_alone["per_fold"][f]["ua"] for f in SCORES], ua, atol=1e-12)
  np.testing.assert_allclose([kd_vs_alone["per_fold"][f]["wa"] for f in SCORES], wa, atol=1e-12)
  assert kd_vs_alone["ua"]["mean"] == pytest.approx(0.25 / 3)
  assert kd_vs_alone["ua"]["std"] == pytest.approx(np.sqrt(np.mean((np.array(ua) - 0.25 / 3)
                                                                   ** 2)))
  assert (kd_vs_alone["ua"]["a_better"], kd_vs_alone["ua"]["b_better"]) == (2, 1)
  assert (kd_vs_alone["wa"]["a_better"], kd_vs_alone["wa"]["b_better"]) == (2, 0)
  assert teacher_vs_kd["ua"]["mean"] == pytest.approx((0.20 + 0.20 - 0.10) / 3)
  assert rep["train_seconds"] == 8 * 10.0 + 5.0
  assert teacher_vs_kd["ua"]["a_better"] == 2
  # Paired tests: t = mean / (sample std / sqrt(n)), df 2; Wilcoxon exact: ranks 1, 2, 3 of
  # |d| with W- = 1 has P(W <= 1) = 2/8 on each side; WA drops its zero difference (n = 2).
  t = np.mean(ua) / (np.std(ua, ddof=1) / np.sqrt(3))
  assert kd_vs_alone["ua"]["t"] == pytest.approx(t)
  from scipy import stats
  assert kd_vs_alone["ua"]["p_t"] == pytest.approx(2 * stats.t.sf(t, df=2))
  assert kd_vs_alone["ua"]["p_wilcoxon"] == pytest.approx(0.5)
  assert kd_vs_alone["wa"]["p_wilcoxon"] == pytest.approx(0.5)
  md = (tmp_path / "report.md").read_text()
  assert f"| p (t-test) | {kd_vs_alone['ua']['p_t']:.3g} |" in md
  # Per-class recall, folds pooled: each fold's confusion [[3, 1], [1, 3]].
  assert rep["summary"]["teacher"]["recall"] == {"a": 0.75, "b": 0.75}
  assert "| student_kd | 75.0 | 75.0 |" in md

  # Efficiency: the ratio is teacher / stage of features + model, for every stage but the
  # teacher; a stage without feature time (raw waveform in) counts its model alone.
  eff = rep["efficiency"]
  assert eff["teacher"]["total_ms"] == pytest.approx(10.0)
  assert eff["student_alone"]["latency_ratio"] == {"teacher": pytest.approx(5.0)}
  assert eff["student_kd"]["latency_ratio"] == {"teacher": pytest.approx(4.0)}
  assert eff["teacher"]["latency_ratio"] == {}
  assert json.loads((tmp_path / "report.json").read_text())["compare"][0]["ua"]["a_better"] == 2


def test_markdown_has_the_paper_tables(tmp_path):
  corpus, folds, results = _inputs()
  report.write(str(tmp_path), _config(), corpus, folds, results, efficiency=EFFICIENCY)
  md = (tmp_path / "report.md").read_text()
  # Table 1 of the paper: accuracy (= WA), macro precision, macro recall (= UA).
  assert ("| stage | params | UA (macro recall) | WA (accuracy) | macro precision | macro-F1 | "
          "weighted-F1 |") in md
  prec = np.array([0.41, 0.66, 0.51])
  assert (f"| student_alone | 100 | 51.67 ± {100 * np.std([0.40, 0.65, 0.50]):.2f} | "
          f"53.33 ± {100 * np.std([0.45, 0.60, 0.55]):.2f} | "
          f"{100 * prec.mean():.2f} ± {100 * prec.std():.2f} |") in md
  assert "population std over folds (ddof 0)" in md  # np.std above: the reader must know
  # Paired differences, per fold and summarised.
  assert "| student_kd − student_alone UA | student_kd − student_alone WA |" in md
  assert "| fold_1 | -5.00 | +10.00 | +20.00 | +15.00 |" in md
  assert "| folds a > b | 2/3 | 2/3 | 2/3 | 3/3 |" in md
  # Efficiency: params, MACs, latency and the teacher / stage latency ratio.
  assert "## Efficiency: one clip, batch 1, cpu" in md
  assert "| student_alone | 16000 | 100 | 100.00 | — | 2.000 | 2.000 | 5× |" in md
  assert "| student_kd | 16000 | 100 | 100.00 | — | 2.500 | 2.500 | 4× |" in md
  assert "| teacher | 16000 | 1,000 | 500.00 | 2.000 | 8.000 | 10.000 | — |" in md
  summary = report.summary(report.io_utils.read_json(str(tmp_path / "report.json")))
  assert "student_kd − student_alone: UA +8.33" in summary


def test_report_without_efficiency_or_pairs_as_before(tmp_path):
  corpus, folds, results = _inputs()
  rep = report.write(str(tmp_path), _config(compare=()), corpus, folds, results, 2.0)
  md = (tmp_path / "report.md").read_text()
  assert rep["compare"] == [] and rep["efficiency"] == {}
  assert "Paired differences" not in md and "Efficiency" not in md
  assert "| student_kd | 100 |" in md


def test_compare_setting_is_checked():
  with pytest.raises(UserError, match=r"config.report.compare entry \('student_kd', 'nope'\)"):
    report.compare_pairs(_config(compare=(("student_kd", "nope"),)))
  c = _config()
  c.stage_order = ("teacher", "student_kd")  # a subset run skips the pairs it cannot form
  assert report.compare_pairs(c) == [("teacher", "student_kd")]
  assert report.compare_pairs(c, skipped=True) == [("student_kd", "student_alone")]
  with pytest.raises(UserError, match="must be a pair"):
    report.compare_pairs(_config(compare=(("teacher",),)))


def test_a_subset_report_names_the_pairs_it_leaves_out(tmp_path):
  corpus, folds, results = _inputs()
  c = _config()
  c.stage_order = ("teacher", "student_kd")
  rep = report.write(str(tmp_path), c, corpus, folds, results, 2.0)
  md = (tmp_path / "report.md").read_text()
  assert rep["compare_skipped"] == [["student_kd", "student_alone"]]
  assert "Not compared (a stage not in `config.stage_order`): student_kd − student_alone." in md
  assert "| teacher − student_kd UA |" in md


def test_an_averaged_row_is_the_per_fold_mean_of_its_stages_and_is_compared_as_one(tmp_path):
  corpus, folds, results = _inputs()
  c = _config(compare=(("teacher", "students"), ("student_kd", "student_alone")))
  c.report.averaged_rows = {"students": ("student_alone", "student_kd")}
  rep = report.write(str(tmp_path), c, corpus, folds, results, 2.0)
  row = rep["averaged"]["students"]
  # fold_0: UA 0.40 and 0.50; fold_1: 0.65 and 0.60; fold_2: 0.50 and 0.70.
  assert row["per_fold"]["fold_0"]["ua"] == pytest.approx(0.45)
  assert row["per_fold"]["fold_2"]["ua_std"] == pytest.approx(0.10)
  assert (row["per_fold"]["fold_1"]["ua_min"], row["per_fold"]["fold_1"]["ua_max"]) == (0.60, 0.65)
  assert row["ua"]["mean"] == pytest.approx((0.45 + 0.625 + 0.60) / 3)
  assert row["within_fold_std"]["ua"] == pytest.approx((0.05 + 0.025 + 0.10) / 3)
  assert row["per_fold"]["fold_0"]["wa"] == pytest.approx(0.475)
  # The row against a stage: teacher − mean of the students, fold by fold.
  diff = rep["compare"][0]
  assert (diff["a"], diff["b"]) == ("teacher", "students")
  assert [diff["per_fold"][f]["ua"] for f in ("fold_0", "fold_1", "fold_2")] == pytest.approx(
      [0.25, 0.175, 0.0])
  assert diff["ua"]["a_better"] == 2
  assert rep["compare"][1]["per_fold"]["fold_0"]["ua"] == pytest.approx(0.10)  # stages as before
  md = (tmp_path / "report.md").read_text()
  assert "## Averaged rows, mean ± std over folds (%)" in md
  assert "| students | student_alone, student_kd | 55.83 ± 7.73 |" in md
  assert "| fold_1 | 62.50 (60.00–65.00) |" in md
  assert "| teacher − students UA |" in md
  assert "students" not in rep["stages"] and "students" not in rep["summary"]
  assert "students         UA 55.83 ± 7.73" in report.summary(rep)


def test_averaged_rows_are_checked_and_left_out_of_a_run_without_their_stages(tmp_path):
  c = _config(compare=(("teacher", "students"),))
  c.report.averaged_rows = {"students": ("student_alone", "nope")}
  with pytest.raises(UserError, match=r"config.report.averaged_rows.students must name a row "
                                      r"that is not a stage and map it to stages"):
    report.compare_pairs(c)
  c.report.averaged_rows = {"teacher": ("student_alone",)}  # a row may not hide a stage
  with pytest.raises(UserError, match="averaged_rows.teacher"):
    report.averaged_rows(c)
  c.report.averaged_rows = {"students": ("student_alone", "student_kd")}
  c.stage_order = ("teacher", "student_kd")
  assert report.compare_pairs(c, skipped=True) == [("teacher", "students")]
  corpus, folds, results = _inputs()
  rep = report.write(str(tmp_path), c, corpus, folds, results, 2.0)
  assert rep["averaged"] == {} and rep["compare"] == []
  assert rep["compare_skipped"] == [["teacher", "students"]]


def test_every_report_starts_with_the_protocol_line(tmp_path):
  corpus, _, results = _inputs()  # speakers: u0 s0, u1 s1, u2 s2, u3 s0, u4 s1, u5 s2
  folds = [Fold("fold_0", ("u1", "u4"), ("u2", "u5"), ("u0", "u3"), "leave_one_speaker_out", True),
           Fold("fold_1", ("u0", "u3"), ("u2",), ("u1", "u4"), "leave_one_speaker_out", True),
           Fold("fold_2", ("u0",), ("u1", "u3"), ("u2", "u5"), "leave_one_speaker_out", True)]
  config = _config()
  config.train = dict(select="loss")
  config.stages.teacher.input = dict(kind="compare_functionals", normalization="train")
  config.stages.teacher.train = dict(select="ua")
  config.stages.student_alone.train = dict(select=None)  # None inherits config.train
  rep = report.write(str(tmp_path), config, corpus, folds, results)
  line = ("Protocol: leave_one_speaker_out (speaker-independent, 3 folds); test: one speaker per "
          "fold: s0, s1, s2; validation: per fold: s2, s2, s0+s1; input normalisation: teacher "
          "train; student_alone, student_kd none; best epoch by validation: teacher ua; "
          "student_alone, student_kd loss; transductive: no")
  assert (tmp_path / "report.md").read_text().splitlines()[0] == line
  on_disk = json.loads((tmp_path / "report.json").read_text())
  assert next(iter(on_disk)) == "protocol_line" and on_disk["protocol_line"] == line
  assert on_disk["protocol"]["valid_speakers"] == [["s2"], ["s2"], ["s0", "s1"]]
  assert rep["protocol"]["transductive"] is False
  # Any stage with per-speaker statistics puts the test speaker's audio into a statistic.
  config.stages.student_kd.input = dict(kind="waveform", normalization="speaker")
  rep = report.write(str(tmp_path), config, corpus, folds, results)
  assert rep["protocol_line"].endswith("student_kd speaker; best epoch by validation: teacher "
                                       "ua; student_alone, student_kd loss; "
                                       "transductive: yes")
  config.train = dict(select="loss", refit=True)
  rep = report.write(str(tmp_path), config, corpus, folds, results)
  assert ("; tested model: retrained on training + validation speakers for the chosen epochs; "
          "transductive: yes") in rep["protocol_line"]
  assert (tmp_path / "report.md").read_text().startswith(rep["protocol_line"] + "\n")
  # A stage's own train.refit names the stages retrained when not all of them are.
  config.train = dict(select="loss")
  config.stages.teacher.train = dict(select="ua", refit=True)
  rep = report.write(str(tmp_path), config, corpus, folds, results)
  assert rep["protocol"]["refit"] == ["teacher"]
  assert ("; tested model (teacher): retrained on training + validation speakers for the "
          "chosen epochs;") in rep["protocol_line"]


def test_fit_table_from_train_fit_and_validation_loss(tmp_path):
  corpus, folds, results = _inputs()
  for k, fold in enumerate(SCORES):
    for stage in STAGES:
      results[fold][stage].update(train_fit={"ua": 0.9 + 0.01 * k, "wa": 0.9, "loss": 0.2},
                                  valid={"loss": 1.0 + k}, best_epoch=k)
  rep = report.write(str(tmp_path), _config(), corpus, folds, results)
  fit = rep["summary"]["teacher"]["fit"]
  assert fit == pytest.approx({"train_ua": 0.91, "train_loss": 0.2, "valid_loss": 2.0,
                               "best_epoch": 2.0})
  assert "| teacher | 91.00 | 0.200 | 2.000 | 2.0 |" in (tmp_path / "report.md").read_text()
  del results["fold_1"]["student_kd"]["train_fit"]  # an older result: no row for that stage
  rep = report.write(str(tmp_path), _config(), corpus, folds, results)
  assert "fit" not in rep["summary"]["student_kd"] and "fit" in rep["summary"]["teacher"]


def test_refit_table_pairs_the_chosen_checkpoint_with_the_refit_model(tmp_path):
  corpus, folds, results = _inputs()
  # student_kd's tested (refit) UA is 0.50 / 0.60 / 0.70; the chosen checkpoint's before it:
  for fold, before in zip(SCORES, (0.45, 0.60, 0.55)):
    results[fold]["student_kd"]["refit"] = {"epochs": 3, "selected_test": {"ua": before,
                                                                           "wa": 0.5}}
  rep = report.write(str(tmp_path), _config(), corpus, folds, results)
  refit = rep["summary"]["student_kd"]["refit"]["ua"]
  assert refit["before"] == pytest.approx(1.6 / 3)
  gains = np.asarray([0.05, 0.0, 0.15])
  assert refit["gain"]["mean"] == pytest.approx(gains.mean())
  assert refit["gain"]["std"] == pytest.approx(gains.std())
  assert refit["gain"]["better"] == 2
  assert refit["gain"]["p_t"] == pytest.approx(stats.ttest_1samp(gains, 0.0).pvalue)
  assert "refit" not in rep["summary"]["teacher"]
  md = (tmp_path / "report.md").read_text()
  assert "| student_kd | 53.33 | 60.00 | +6.67 ± 6.24 | 2/3 |" in md
  assert "| teacher |" not in md.split("## Refit")[1].split("##")[0]
  # A fold without the record (a result from before it): no refit row.
  del results["fold_1"]["student_kd"]["refit"]
  assert "refit" not in report.write(str(tmp_path), _config(), corpus, folds,
                                     results)["summary"]["student_kd"]


def test_noisy_grid_paired_differences_per_snr(tmp_path):
  """A compared pair that both have the noisy test grid gets per-SNR paired differences
  (each fold's mean over noise types) and one over every noisy condition, with tests."""
  corpus, folds, results = _inputs()
  # student_kd − student_alone per fold, cells (white, pink): at 0 dB and at 20 dB
  at_0 = {"fold_0": (0.1, 0.2), "fold_1": (0.0, 0.1), "fold_2": (0.2, 0.3)}
  at_20 = {"fold_0": (0.0, 0.0), "fold_1": (0.1, -0.3), "fold_2": (-0.05, -0.05)}
  for fold in SCORES:
    cells = {"white@0": at_0[fold][0], "pink@0": at_0[fold][1],
             "white@20": at_20[fold][0], "pink@20": at_20[fold][1]}
    results[fold]["student_alone"]["noisy"] = {c: {"ua": 0.3, "wa": 0.3} for c in cells}
    results[fold]["student_kd"]["noisy"] = {c: {"ua": 0.3 + d, "wa": 0.3} for c, d in cells.items()}
  rep = report.write(str(tmp_path), _config(), corpus, folds, results)
  (kd,) = rep["noisy_compare"]  # the teacher has no grid: (teacher, student_kd) has no rows
  assert (kd["a"], kd["b"], list(kd["rows"])) == ("student_kd", "student_alone",
                                                   ["0 dB", "20 dB", "all noisy"])
  low, high, every = kd["rows"]["0 dB"], kd["rows"]["20 dB"], kd["rows"]["all noisy"]
  assert low["per_fold"] == pytest.approx({"fold_0": 0.15, "fold_1": 0.05, "fold_2": 0.25})
  assert (low["mean"], low["a_better"]) == (pytest.approx(0.15), 3)
  assert (high["mean"], high["a_better"]) == (pytest.approx(-0.05), 0)
  assert every["per_fold"] == pytest.approx({"fold_0": 0.075, "fold_1": -0.025, "fold_2": 0.1})
  assert (every["mean"], every["a_better"]) == (pytest.approx(0.05), 2)
  from scipy import stats
  assert low["p_t"] == pytest.approx(stats.ttest_1samp([0.15, 0.05, 0.25], 0.0).pvalue)
  md = report.markdown(rep)
  assert "**student_kd − student_alone** on noisy test speech" in md
  assert "| 0 dB | +15.00 ± 8.16 | 3/3 |" in md
  assert "student_kd − student_alone on noisy speech: UA +5.00" in report.summary(rep)
