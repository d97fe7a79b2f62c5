"""EmoDistill models: prosodic ResNet, BERT text classifier (real all-MiniLM-L6-v2), HuBERT student.

Student layouts: the full hubert-base-ls960 / hubert-large-ll60k presets are checked with
`jax.eval_shape` (no compute); real forward passes run on the same layouts shrunk to
hidden 64, 2 layers, 4 heads, FFN 128 and 32 conv channels, keeping the presets' 7 conv
layers (kernels, strides), 128-tap / 16-group positional conv and norm placement.
"""

from __future__ import annotations

import functools
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from jaxser import losses
from jaxser.methods.emodistill import emodistill_loss
from jaxser.models import pretrained
from jaxser.models import bert
from jaxser.models import wav2vec2 as w2v
from jaxser.models.emodistill import (EmoDistillStudent, TextClassifier, emodistill_loss_inputs,
                                      pretrained_variables, tokenize)
from jaxser.models.resnet import ProsodicResNet

NUM_CLASSES = 4
PRESETS = {"base": "hubert-base-ls960", "large": "hubert-large-ll60k"}


def _numpy_variables(model, *args, seed: int = 0):
  """Random variables of `model`'s shapes drawn by numpy (no XLA compile of an init)."""
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    if path[-1].key in ("scale", "var", "weight_g"):
      return np.ones(leaf.shape, np.float32)
    return (0.05 * rng.standard_normal(leaf.shape)).astype(np.float32)

  shapes = jax.eval_shape(model.init, jax.random.key(0), *args)
  return jax.tree_util.tree_map_with_path(draw, shapes)


def _count(tree) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


def _shrunk(preset: str) -> w2v.Wav2Vec2Config:
  return w2v.PRESETS[preset].replace(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=128, conv_dim=(32,) * 7)


@pytest.fixture(scope="module")
def tiny():
  """Tiny teachers and student whose widths fit together, their variables and one batch."""
  text = TextClassifier(NUM_CLASSES, preset="tiny-bert", embedding_dim=16)
  prosody = ProsodicResNet(NUM_CLASSES, widths=(4, 8, 8, 16), embedding_dim=12, dropout=0.0)
  student = EmoDistillStudent(NUM_CLASSES, preset="tiny-hubert",
                              linguistic_dim=text.embedding_size(),
                              prosodic_dim=prosody.embedding_dim, head_dim=32,
                              classifier_hidden=16)
  rng = np.random.default_rng(3)
  b = {
      "wav": jnp.asarray(rng.standard_normal((3, 3000)), jnp.float32),
      "wav_len": jnp.array([3000, 2500, 1200]),
      "ids": jnp.asarray(rng.integers(1, 100, (3, 10)), jnp.int32),
      "ids_len": jnp.array([10, 6, 3]),
      "lld": jnp.asarray(rng.standard_normal((3, 30, 25)), jnp.float32),
      "lld_len": jnp.array([30, 25, 12]),
      "labels": jnp.array([0, 3, 1]),
  }
  return {"text": text, "prosody": prosody, "student": student, "batch": b,
          "v_text": _numpy_variables(text, b["ids"], b["ids_len"], seed=0),
          "v_prosody": _numpy_variables(prosody, b["lld"], b["lld_len"], seed=1),
          "v_student": _numpy_variables(student, b["wav"], b["wav_len"], seed=2)}


# ----------------------------------------------------------------------------- ResNet


def _resnet_param_count(widths, embedding_dim, num_classes, num_lld=25):
  """Counted by hand: convs have no bias, each BN has scale + bias."""
  n = 2 * num_lld + 9 * widths[0] + 2 * widths[0]  # input BN, stem conv + BN
  cin = widths[0]
  for cout in widths:
    n += 9 * cin * cout + 9 * cout * cout + 4 * cout
    if cin != cout:
      n += cin * cout + 2 * cout  # 1x1 shortcut + BN
    cin = cout
  return n + (cin + 1) * embedding_dim + (embedding_dim + 1) * num_classes


def test_resnet_shapes_and_param_count():
  model = ProsodicResNet(NUM_CLASSES)
  x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 200, 25)), jnp.float32)
  length = jnp.array([200, 120])
  variables = _numpy_variables(model, x, length)
  n = _count(variables["params"])
  assert n == _resnet_param_count((16, 32, 64, 128), 128, NUM_CLASSES) == 324326
  out, inter = jax.jit(functools.partial(model.apply, capture_intermediates=True))(
      variables, x, length)
  chex.assert_shape(out["logits"], (2, NUM_CLASSES))
  chex.assert_shape(out["embedding"], (2, 128))
  assert np.isfinite(np.asarray(out["logits"])).all()
  assert (np.asarray(out["embedding"]) >= 0).all()  # ReLU embedding
  # Block 1 keeps [T, 25]; blocks 2-4 halve both axes (ceil, PyTorch padding 1).
  shapes = [inter["intermediates"][f"block{i}"]["__call__"][0][0].shape for i in range(4)]
  assert shapes == [(2, 200, 25, 16), (2, 100, 13, 32), (2, 50, 7, 64), (2, 25, 4, 128)]


def test_resnet_padding_changes_nothing_in_eval_and_train(tiny):
  model, variables = tiny["prosody"], tiny["v_prosody"]
  rng = np.random.default_rng(1)
  length = jnp.array([61, 37, 12])
  x = rng.standard_normal((3, 61, 25)).astype(np.float32) * 5 + 2
  # The same utterances with more padding, filled with large values.
  padded = np.concatenate([x, np.zeros((3, 40, 25), np.float32)], 1)
  for b, n in enumerate(np.asarray(length)):
    padded[b, n:] = 1e3
  train = jax.jit(functools.partial(model.apply, train=True, mutable=["batch_stats"]))
  ref, stats = train(variables, jnp.asarray(x), length)
  out, stats2 = train(variables, jnp.asarray(padded), length)
  np.testing.assert_allclose(out["logits"], ref["logits"], rtol=1e-5, atol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), stats, stats2)
  # Eval: an utterance alone, cut to its length, gives what it gives inside a padded batch.
  variables = {**variables, **stats}
  apply = jax.jit(model.apply)
  batch = apply(variables, jnp.asarray(padded), length)["logits"]
  for b, n in enumerate(np.asarray(length)):
    alone = apply(variables, jnp.asarray(x[b:b + 1, :n]), length[b:b + 1])["logits"]
    np.testing.assert_allclose(batch[b], alone[0], rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- student


@pytest.mark.parametrize("layout", ["base", "large"])
def test_student_full_presets_shapes(layout):
  model = EmoDistillStudent(NUM_CLASSES, preset=PRESETS[layout], linguistic_dim=768,
                            prosodic_dim=128)
  wav = jax.ShapeDtypeStruct((2, 32000), jnp.float32)
  length = jax.ShapeDtypeStruct((2,), jnp.int32)
  variables = jax.eval_shape(model.init, jax.random.key(0), wav, length)
  params = variables["params"]
  # The encoder is exactly the bare HuBERT of that preset.
  assert _count(params["hubert"]) == w2v.count_params(w2v.PRESETS[PRESETS[layout]])
  hidden = 768 if layout == "base" else 1024
  # Layouts: base normalises only the first conv layer (group norm), large every layer.
  conv_layers = params["hubert"]["feature_extractor"]["conv_layers"]
  has_norm = ["layer_norm" in conv_layers[str(i)] for i in range(7)]
  assert has_norm == ([True] + [False] * 6 if layout == "base" else [True] * 7)
  assert model.encoder_config().do_stable_layer_norm == (layout == "large")
  assert params["linguistic_head"]["dense1"]["kernel"].shape == (hidden, 256)
  assert params["linguistic_head"]["dense2"]["kernel"].shape == (256, 768)
  assert params["prosodic_head"]["dense2"]["kernel"].shape == (256, 128)
  assert params["classifier_hidden"]["kernel"].shape == (768 + 128, 256)
  out = jax.eval_shape(model.apply, variables, wav, length)
  assert {k: v.shape for k, v in out.items()} == {
      "logits": (2, NUM_CLASSES), "embedding": (2, 768 + 128),
      "embedding_linguistic": (2, 768), "embedding_prosodic": (2, 128)}


@pytest.mark.parametrize("layout", ["base", "large"])
def test_student_forward_shrunk_layouts(layout):
  cfg = _shrunk(PRESETS[layout])
  model = EmoDistillStudent(NUM_CLASSES, encoder=cfg, linguistic_dim=24, prosodic_dim=12,
                            head_dim=32, classifier_hidden=16)
  rng = np.random.default_rng(2)
  wav = rng.standard_normal((2, 8000)).astype(np.float32)
  length = jnp.array([8000, 5000])
  variables = _numpy_variables(model, wav, length)
  assert flatten_dict(variables["params"]).keys() == flatten_dict(
      jax.eval_shape(model.init, jax.random.key(0), wav, length)["params"]).keys()
  apply = jax.jit(model.apply)
  out = apply(variables, wav, length)
  chex.assert_shape([out["logits"], out["embedding_linguistic"], out["embedding_prosodic"],
                     out["embedding"]], [(2, NUM_CLASSES), (2, 24), (2, 12), (2, 36)])
  np.testing.assert_array_equal(
      out["embedding"], jnp.concatenate([out["embedding_linguistic"], out["embedding_prosodic"]],
                                        -1))
  assert all(np.isfinite(np.asarray(v)).all() for v in out.values())
  if layout == "large":
    # Layer-norm extractor: nothing reads padded samples, so what fills them changes nothing
    # (the base layout's group norm sees them, as in HF).
    wav[1, 5000:] = 100.0
    np.testing.assert_allclose(apply(variables, wav, length)["logits"], out["logits"],
                               rtol=1e-4, atol=1e-5)


def test_student_load_pretrained_swaps_encoder_only(tiny, tmp_path):
  fresh = tiny["v_student"]
  rng = np.random.default_rng(7)
  saved = jax.tree.map(lambda a: rng.standard_normal(a.shape).astype(np.float32),
                       fresh["params"]["hubert"])
  pretrained.save_hf(saved, w2v.PRESETS["tiny-hubert"], tmp_path / "hubert")
  model = tiny["student"].clone(checkpoint=str(tmp_path / "hubert"))
  loaded = pretrained_variables(model, fresh)
  flat_saved = flatten_dict(saved)
  flat_loaded = flatten_dict(loaded["params"]["hubert"])
  assert flat_saved.keys() == flat_loaded.keys()
  for k in flat_saved:
    np.testing.assert_allclose(flat_loaded[k], flat_saved[k], rtol=1e-6, atol=1e-6)
  for head in ("linguistic_head", "prosodic_head", "classifier_hidden", "classifier"):
    jax.tree.map(np.testing.assert_array_equal, loaded["params"][head], fresh["params"][head])
  # A model without a checkpoint keeps its fresh variables.
  assert pretrained_variables(tiny["student"], fresh) is fresh


# ----------------------------------------------------------------------------- text teacher


SENTENCES = ["I am so happy to see you again!",
             "This is terrible news, and I am angry about it.",
             "Okay."]


def test_text_classifier_on_real_minilm(minilm_dir):
  directory = minilm_dir
  ids, lengths = tokenize(SENTENCES, directory, max_len=24)
  assert ids.shape == (3, 24) and ids.dtype == np.int32
  transformers = pytest.importorskip("transformers")
  unpadded = transformers.AutoTokenizer.from_pretrained(directory)(SENTENCES)["input_ids"]
  assert lengths.tolist() == [len(t) for t in unpadded]
  for row, tokens in zip(ids, unpadded):
    assert row[:len(tokens)].tolist() == tokens and (row[len(tokens):] == 0).all()

  model = TextClassifier(NUM_CLASSES, checkpoint=directory, embedding_dim=64)
  assert model.embedding_size() == 64
  assert model.encoder_config() == bert.PRESETS["all-MiniLM-L6-v2"]
  variables = pretrained_variables(model, _numpy_variables(model, ids, lengths))
  out = jax.jit(model.apply)(variables, ids, lengths)
  chex.assert_shape([out["logits"], out["embedding"]], [(3, NUM_CLASSES), (3, 64)])
  assert np.isfinite(np.asarray(out["logits"])).all()

  # The loaded BERT is the one the forward pass uses, and `length` masks like the
  # tokenizer's attention mask: recompute the head on load_encoder's pooled output.
  encoder, enc_vars, _ = pretrained.load_encoder(directory, family="bert")
  mask = np.arange(24)[None, :] < lengths[:, None]
  pooled = encoder.apply(enc_vars, jnp.asarray(ids), attention_mask=jnp.asarray(mask))
  head = variables["params"]
  emb = jax.nn.relu(pooled["pooler_output"] @ head["embedding"]["kernel"]
                    + head["embedding"]["bias"])
  logits = emb @ head["classifier"]["kernel"] + head["classifier"]["bias"]
  np.testing.assert_allclose(out["embedding"], emb, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(out["logits"], logits, rtol=1e-5, atol=1e-5)


def test_text_classifier_checkpoint_without_pooler_keeps_fresh_pooler(tiny, tmp_path):
  fresh = tiny["v_text"]
  rng = np.random.default_rng(8)
  saved = {k: jax.tree.map(lambda a: rng.standard_normal(a.shape).astype(np.float32), v)
           for k, v in fresh["params"]["bert"].items() if k != "pooler"}
  pretrained.save_hf(saved, bert.PRESETS["tiny-bert"].replace(add_pooling_layer=False),
                     tmp_path / "bert")
  model = tiny["text"].clone(checkpoint=str(tmp_path / "bert"))
  loaded = pretrained_variables(model, fresh)["params"]
  jax.tree.map(np.testing.assert_array_equal, loaded["bert"]["pooler"],
               fresh["params"]["bert"]["pooler"])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6),
               {k: v for k, v in loaded["bert"].items() if k != "pooler"}, saved)
  for head in ("embedding", "classifier"):
    jax.tree.map(np.testing.assert_array_equal, loaded[head], fresh["params"][head])


# ----------------------------------------------------------------------------- loss glue


def test_loss_glue_equals_sum_of_parts_and_trains_only_the_student(tiny):
  text, prosody, student, b = tiny["text"], tiny["prosody"], tiny["student"], tiny["batch"]
  v_pros = tiny["v_prosody"]

  def total_loss(p_stud, p_text, p_pros):
    s = student.apply({"params": p_stud}, b["wav"], b["wav_len"])
    t_l = text.apply({"params": p_text}, b["ids"], b["ids_len"])
    t_p = prosody.apply({**v_pros, "params": p_pros}, b["lld"], b["lld_len"])
    total, parts = emodistill_loss(**emodistill_loss_inputs(s, t_l, t_p), labels=b["labels"])
    return total, (parts, s, t_l, t_p)

  (total, (parts, s, t_l, t_p)), grads = jax.jit(jax.value_and_grad(
      total_loss, argnums=(0, 1, 2), has_aux=True))(tiny["v_student"]["params"],
                                                    tiny["v_text"]["params"], v_pros["params"])
  expected = {
      "kl_l": losses.hinton_kd(s["logits"], t_l["logits"], 5.0, t2_scale=False),
      "kl_p": losses.hinton_kd(s["logits"], t_p["logits"], 0.5, t2_scale=False),
      "negcos_l": losses.negative_cosine(s["embedding_linguistic"], t_l["embedding"]),
      "negcos_p": losses.negative_cosine(s["embedding_prosodic"], t_p["embedding"]),
      "ce": losses.cross_entropy(s["logits"], b["labels"]),
  }
  assert parts.keys() == expected.keys()
  for k in expected:
    np.testing.assert_allclose(parts[k], expected[k], rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(
      total, 1.0 * (expected["kl_l"] + expected["kl_p"])
      + 10.0 * (expected["negcos_l"] + expected["negcos_p"]) + 2.0 * expected["ce"], rtol=1e-6)
  g_stud, g_text, g_pros = grads
  for name in ("hubert", "linguistic_head", "prosodic_head", "classifier_hidden", "classifier"):
    assert any(np.abs(np.asarray(g)).max() > 0 for g in jax.tree.leaves(g_stud[name])), name
  # Frozen teachers: no gradient reaches them even when they run inside the loss.
  assert all(not np.asarray(g).any() for g in jax.tree.leaves((g_text, g_pros)))


def test_loss_glue_names_a_width_mismatch(tiny):
  b = tiny["batch"]
  s = jax.jit(tiny["student"].apply)(tiny["v_student"], b["wav"], b["wav_len"])
  t_l = jax.jit(tiny["text"].apply)(tiny["v_text"], b["ids"], b["ids_len"])
  t_p = jax.jit(tiny["prosody"].apply)(tiny["v_prosody"], b["lld"], b["lld_len"])
  emodistill_loss_inputs(s, t_l, t_p)  # matching widths pass
  with pytest.raises(ValueError, match="prosodic_dim"):
    emodistill_loss_inputs({**s, "embedding_prosodic": s["embedding_prosodic"][:, :7]}, t_l, t_p)
  with pytest.raises(ValueError, match="linguistic_dim"):
    emodistill_loss_inputs(s, {**t_l, "embedding": t_l["embedding"][:, :5]}, t_p)


def test_unknown_presets_name_the_setting():
  wav, ids = jnp.zeros((1, 1000)), jnp.zeros((1, 4), jnp.int32)
  with pytest.raises(ValueError, match="emodistill_student preset='nope'"):
    EmoDistillStudent(NUM_CLASSES, preset="nope").init(jax.random.key(0), wav)
  with pytest.raises(ValueError, match="text_classifier preset='nope'"):
    TextClassifier(NUM_CLASSES, preset="nope").init(jax.random.key(0), ids)
