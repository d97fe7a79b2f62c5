"""LiteCNN KD: the LiteCNN student pinned (layers, shapes of a 1 s input, parameter count,
PyTorch parity), the wav2vec2 classifier teacher against HF, profile helpers, and both
configs end to end on tiny data."""

from __future__ import annotations

import math
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ml_collections import ConfigDict

from jaxser import profile
from jaxser import trainer
from jaxser.models import layers
from jaxser.models import wav2vec2 as w2v
from jaxser.models.litecnn import LiteCNN
from jaxser.models.registry import build_model
from jaxser.models.w2v2_classifier import W2V2Classifier
from tiny_config import ROOT

torch = pytest.importorskip("torch")

SAMPLES = 16000  # 1 s at 16 kHz, the paper's input


def _init(model, x, length):
  return profile.init_variables(model, jnp.asarray(x), jnp.asarray(length))


@pytest.mark.parametrize("t, length", [(994, 64), (994, 1), (64, 64), (100, 7), (10, 16),
                                       (7, 3)])
def test_adaptive_avg_pool_matches_torch(t, length):
  x = np.random.default_rng(t + length).standard_normal((2, t, 5)).astype(np.float32)
  ours = np.asarray(layers.adaptive_avg_pool1d(jnp.asarray(x), length))
  theirs = torch.nn.functional.adaptive_avg_pool1d(torch.tensor(x).transpose(1, 2), length)
  np.testing.assert_allclose(ours, theirs.transpose(1, 2).numpy(), rtol=0, atol=1e-6)


def test_layers_shapes_and_parameter_count_at_one_second():
  model = LiteCNN(num_classes=6)
  x = np.zeros((1, SAMPLES), np.float32)
  variables = _init(model, x, [SAMPLES])
  table = profile.param_table(variables)
  assert [(p, s) for p, s, _ in table] == sorted([
      ("stem/kernel", (80, 1, 32)),
      ("stem_bn/scale", (32,)), ("stem_bn/bias", (32,)),
      ("block0/depthwise/kernel", (3, 1, 32)), ("block0/pointwise/kernel", (32, 64)),
      ("block0/bn/scale", (64,)), ("block0/bn/bias", (64,)),
      ("block1/depthwise/kernel", (3, 1, 64)), ("block1/pointwise/kernel", (64, 128)),
      ("block1/bn/scale", (128,)), ("block1/bn/bias", (128,)),
      ("block2/depthwise/kernel", (3, 1, 128)), ("block2/pointwise/kernel", (128, 128)),
      ("block2/bn/scale", (128,)), ("block2/bn/bias", (128,)),
      ("fc1/kernel", (128 * 64, 128)), ("fc1/bias", (128,)),
      ("fc2/kernel", (128, 6)), ("fc2/bias", (6,)),
  ])
  total = sum(n for _, _, n in table)
  assert total == 1_080_038
  assert abs(total - 1.08e6) <= 0.05 * 1.08e6  # the paper's ~1.08 M

  # Output shape of every layer for 1 s: (16000 - 80) // 2 + 1 = 7961 frames after the stem,
  # then max-pool(3, 2) per block: 3980, 1989, 994; adaptive pooling to 64.
  _, inter = model.apply(variables, jnp.asarray(x), jnp.asarray([SAMPLES]),
                         capture_intermediates=True, mutable=["intermediates"])
  shapes = {k: v["__call__"][0].shape for k, v in inter["intermediates"].items()
            if k != "__call__"}
  shapes.update({f"{k}/{m}": v["__call__"][0].shape
                 for k, sub in inter["intermediates"].items() if k.startswith("block")
                 for m, v in sub.items() if m != "__call__"})
  assert shapes == {
      "stem": (1, 7961, 32), "stem_bn": (1, 7961, 32),
      "block0": (1, 3980, 64), "block0/depthwise": (1, 7961, 32),
      "block0/pointwise": (1, 7961, 64), "block0/bn": (1, 7961, 64),
      "block1": (1, 1989, 128), "block1/depthwise": (1, 3980, 64),
      "block1/pointwise": (1, 3980, 128), "block1/bn": (1, 3980, 128),
      "block2": (1, 994, 128), "block2/depthwise": (1, 1989, 128),
      "block2/pointwise": (1, 1989, 128), "block2/bn": (1, 1989, 128),
      "fc1": (1, 128), "Dropout_0": (1, 128), "fc2": (1, 6),
  }
  out = model.apply(variables, jnp.asarray(x), jnp.asarray([SAMPLES]))
  assert out["logits"].shape == (1, 6) and out["embedding"].shape == (1, 128)


class _TorchLiteCNN(torch.nn.Module):
  """The same network in PyTorch layout (NCW), as the paper describes it."""

  def __init__(self, classes, stem=32, blocks=(64, 128, 128), k=3, pool_length=64, hidden=128):
    super().__init__()
    nn = torch.nn
    layers_ = [nn.Conv1d(1, stem, 80, stride=2, bias=False), nn.BatchNorm1d(stem), nn.ReLU()]
    c = stem
    for f in blocks:
      layers_ += [nn.Conv1d(c, c, k, padding=k // 2, groups=c, bias=False),
                  nn.Conv1d(c, f, 1, bias=False), nn.BatchNorm1d(f), nn.ReLU(),
                  nn.MaxPool1d(3, 2)]
      c = f
    self.features = nn.Sequential(*layers_, nn.AdaptiveAvgPool1d(pool_length))
    self.classifier = nn.Sequential(nn.Linear(c * pool_length, hidden), nn.ReLU(),
                                    nn.Dropout(0.2), nn.Linear(hidden, classes))

  def forward(self, x):
    return self.classifier(self.features(x[:, None]).flatten(1))


def _copy_to_torch(variables, tm):
  """Loads our variables into the torch module (conv [K, in, out] -> [out, in, K])."""
  p, s = variables["params"], variables["batch_stats"]
  t = lambda a: torch.tensor(np.asarray(a))

  def bn(module, params, stats):
    module.weight.copy_(t(params["scale"]))
    module.bias.copy_(t(params["bias"]))
    module.running_mean.copy_(t(stats["mean"]))
    module.running_var.copy_(t(stats["var"]))

  f = tm.features
  with torch.no_grad():
    f[0].weight.copy_(t(np.asarray(p["stem"]["kernel"]).transpose(2, 1, 0)))
    bn(f[1], p["stem_bn"], s["stem_bn"])
    for i in range(3):
      base, blk = 3 + 5 * i, p[f"block{i}"]
      # Depthwise [K, 1, C] -> torch grouped [C, 1, K]; pointwise [in, out] -> [out, in, 1].
      f[base].weight.copy_(t(np.asarray(blk["depthwise"]["kernel"]).transpose(2, 1, 0)))
      f[base + 1].weight.copy_(t(np.asarray(blk["pointwise"]["kernel"]).T[..., None]))
      bn(f[base + 2], blk["bn"], s[f"block{i}"]["bn"])
    for name, lin in (("fc1", tm.classifier[0]), ("fc2", tm.classifier[3])):
      lin.weight.copy_(t(np.asarray(p[name]["kernel"]).T))
      lin.bias.copy_(t(p[name]["bias"]))


def _randomise(variables, seed):
  """Every parameter and running statistic perturbed (variances kept positive)."""
  leaves, tree = jax.tree.flatten_with_path(variables)
  rng = np.random.default_rng(seed)
  out = []
  for path, v in leaves:
    v = np.asarray(v)
    noise = rng.standard_normal(v.shape).astype(np.float32)
    if path[-1].key == "var":
      out.append(rng.uniform(0.5, 2.0, v.shape).astype(np.float32))
    elif path[-1].key in ("scale", "mean"):
      out.append(v + 0.3 * noise)
    else:
      out.append(v + 0.05 * noise)
  return jax.tree.unflatten(tree, out)


def test_forward_matches_torch_in_eval_mode():
  model = LiteCNN(num_classes=6)
  x = np.random.default_rng(0).standard_normal((2, SAMPLES)).astype(np.float32)
  variables = _randomise(_init(model, x[:1], [SAMPLES]), seed=1)
  tm = _TorchLiteCNN(6).eval()
  assert sum(p.numel() for p in tm.parameters()) == 1_080_038
  _copy_to_torch(variables, tm)
  with torch.no_grad():
    theirs = tm(torch.tensor(x)).numpy()
  ours = np.asarray(model.apply(variables, jnp.asarray(x), jnp.asarray([SAMPLES] * 2))["logits"])
  assert np.abs(ours - theirs).max() <= 1e-5 * max(1.0, np.abs(theirs).max()), \
      np.abs(ours - theirs).max()


def test_quickstart_pools_still_work():
  x = np.random.default_rng(0).standard_normal((2, 4000)).astype(np.float32)
  length = np.array([4000, 2500], np.int32)
  for pool in ("mean", "masked_mean"):
    model = LiteCNN(num_classes=4, stem_features=8, stem_stride=8, block_features=(8, 16, 16),
                    block_kernel=9, hidden=16, pool=pool)
    variables = _init(model, x, length)
    assert variables["params"]["fc1"]["kernel"].shape == (16, 16)
    out = model.apply(variables, jnp.asarray(x), jnp.asarray(length))
    assert out["logits"].shape == (2, 4)
  with pytest.raises(ValueError, match="pool='max'"):
    LiteCNN(num_classes=4, pool="max").init(jax.random.PRNGKey(0), jnp.zeros((1, 4000)))


def test_profile_param_table_macs_and_latency():
  model = LiteCNN(num_classes=6)
  x, length = jnp.zeros((1, SAMPLES)), jnp.asarray([SAMPLES])
  variables = _init(model, x, length)
  macs = profile.macs(model, variables, x, length)
  # Convolutions and matmuls alone: stem 7961*80*32, pointwise 7961*32*64 + 3980*64*128 +
  # 1989*128*128, depthwise 3*(7961*32 + 3980*64 + 1989*128), FCs 8192*128 + 128*6.
  dense = (7961 * 80 * 32 + 7961 * 32 * 64 + 3980 * 64 * 128 + 1989 * 128 * 128
           + 3 * (7961 * 32 + 3980 * 64 + 1989 * 128) + 8192 * 128 + 128 * 6)
  assert dense <= macs <= 1.25 * dense, (macs, dense)
  ms = profile.latency(model, variables, x, length, repeats=3)
  assert 0 < ms < 10_000
  with pytest.raises(ValueError, match="batch 1"):
    profile.latency(model, variables, jnp.zeros((2, SAMPLES)), jnp.asarray([SAMPLES] * 2))


def test_profile_macs_are_nan_where_the_backend_counts_no_flops():
  class Compiled:  # what a backend without a flop count gives back
    def __init__(self, cost):
      self.cost = cost

    def cost_analysis(self):
      return self.cost

  assert math.isnan(profile.macs_of(Compiled({})))
  assert math.isnan(profile.macs_of(Compiled([{"bytes accessed": 8.0}])))
  assert profile.macs_of(Compiled([{"flops": 8.0}])) == 4.0


def test_profile_command(capsys):
  config = os.path.join(ROOT, "configs", "litecnn_kd_cremad.py")
  assert profile.main(["--config", config, "--stage", "student_kd",
                       "--repeats", "2"]) == 0
  out = capsys.readouterr().out
  assert "6 classes, input (1, 16000)" in out
  assert "frozen Whisper" not in out
  assert "fc1/kernel" in out and "1,048,576" in out and "1,080,038" in out
  assert "MACs (XLA flops / 2)" in out and "latency, batch 1" in out
  assert "input from raw audio (waveform)" in out
  # A teacher on frozen Whisper layers: shaped by one clip through its input builder, and
  # counted with the encoder that made its features.
  config = os.path.join(ROOT, "configs", "litecnn_kd_emodb.py")
  assert profile.main(["--config", config, "--stage", "teacher_window", "--repeats", "1"]) == 0
  out = capsys.readouterr().out
  assert "7 classes, input (1, 3584)" in out
  assert "with the frozen Whisper layers its input ran: 20,594,190 params" in out


def test_feature_time_per_input_kind():
  ms = {kind: profile.feature_ms(ConfigDict(dict(kind=kind, max_seconds=1.0)), 16000, clips=3)
        for kind in ("waveform", "logfbank", "egemaps_functionals")}
  assert all(v > 0.0 for v in ms.values()), ms
  assert ms["egemaps_functionals"] > ms["waveform"]  # opensmile vs a normalisation
  assert profile.feature_ms(ConfigDict(dict(kind="tokens")), 16000) is None


# ----------------------------------------------------------------------------- the teacher


def _hf_classifier(preset: str, directory, *, weighted: bool = False, num_labels: int = 6,
                   projector: int = 16, seed: int = 0):
  """A random HF *ForSequenceClassification of a tiny preset, every tensor perturbed, saved."""
  transformers = pytest.importorskip("transformers")
  hf = w2v.PRESETS[preset].to_hf()
  hf.pop("architectures")
  hf.update(num_labels=num_labels, classifier_proj_size=projector,
            use_weighted_layer_sum=weighted, hidden_dropout=0.0, attention_dropout=0.0,
            activation_dropout=0.0, feat_proj_dropout=0.0, layerdrop=0.0)
  torch.manual_seed(seed)
  config = transformers.AutoConfig.for_model(**hf)
  model = transformers.AutoModelForAudioClassification.from_config(config).eval()
  with torch.no_grad():
    for p in model.parameters():
      p.add_(0.1 * torch.randn_like(p))
  model.save_pretrained(directory)
  return model


def _padded_batch(samples=2000, lengths=(2000, 1300)):
  x = np.random.default_rng(0).standard_normal((len(lengths), samples)).astype(np.float32)
  lengths = np.asarray(lengths, np.int32)
  mask = np.arange(samples)[None] < lengths[:, None]
  return np.where(mask, x, 0.0).astype(np.float32), lengths, mask.astype(np.int64)


@pytest.mark.parametrize("preset, weighted", [("tiny-wav2vec2", False),
                                              ("tiny-hubert-large", True)])
def test_teacher_logits_match_hf_sequence_classification(preset, weighted, tmp_path):
  tm = _hf_classifier(preset, tmp_path, weighted=weighted)
  x, lengths, mask = _padded_batch()
  for mask_padding in (True, False):
    model = W2V2Classifier(num_classes=6, checkpoint=str(tmp_path), projector_size=16,
                           mask_padding=mask_padding)
    assert model.encoder_config().model_type == w2v.PRESETS[preset].model_type
    variables = model.load_pretrained(_init(model, x, lengths))
    ours = np.asarray(jax.jit(model.apply)(variables, jnp.asarray(x), jnp.asarray(lengths))
                      ["logits"])
    with torch.no_grad():
      theirs = tm(torch.tensor(x), attention_mask=torch.tensor(mask) if mask_padding else None)
    diff = np.abs(ours - theirs.logits.numpy()).max()
    assert diff <= 1e-5, (mask_padding, diff)
  assert "layer_weights" in variables["params"] if weighted else True
  hf_count = sum(p.numel() for p in tm.parameters())
  assert sum(n for _, _, n in profile.param_table(variables)) == hf_count


def test_teacher_heads_mismatch_is_a_clear_error(tmp_path):
  _hf_classifier("tiny-wav2vec2", tmp_path, num_labels=4)
  x, lengths, _ = _padded_batch()
  model = W2V2Classifier(num_classes=6, checkpoint=str(tmp_path), projector_size=16)
  with pytest.raises(ValueError, match="load_heads=False"):
    model.load_pretrained(_init(model, x, lengths))
  fresh = W2V2Classifier(num_classes=6, checkpoint=str(tmp_path), projector_size=16,
                         load_heads=False)
  init = _init(fresh, x, lengths)
  loaded = fresh.load_pretrained(init)
  np.testing.assert_array_equal(loaded["params"]["classifier"]["kernel"],
                                init["params"]["classifier"]["kernel"])


def test_teacher_from_preset_builds_from_the_registry_and_freezes_features():
  cfg = dict(name="w2v2_classifier", preset="tiny-wav2vec2", projector_size=8, dropout=0.1,
             freeze_feature_encoder=True)
  model = build_model(cfg, 5)
  x, lengths, _ = _padded_batch()
  variables = _init(model, x, lengths)
  assert model.load_pretrained(variables) is variables  # no checkpoint: nothing to load
  assert model.encoder_config().hidden_dropout == 0.1
  out = jax.eval_shape(model.apply, variables, jnp.asarray(x), jnp.asarray(lengths))
  assert out["logits"].shape == (2, 5) and out["embedding"].shape == (2, 8)

  def loss(params, m):
    o = m.apply({"params": params}, jnp.asarray(x), jnp.asarray(lengths), train=True,
                rngs={"dropout": jax.random.PRNGKey(1)})
    return jnp.sum(o["logits"] ** 2)

  for frozen in (True, False):
    m = build_model({**cfg, "freeze_feature_encoder": frozen}, 5)
    grads = jax.jit(jax.grad(loss), static_argnums=1)(variables["params"], m)["wav2vec2"]
    norm = lambda tree: float(sum(jnp.sum(g ** 2) for g in jax.tree.leaves(tree)))
    assert (norm(grads["feature_extractor"]) == 0.0) == frozen
    assert norm(grads["encoder"]) > 0.0
  with pytest.raises(ValueError, match="preset='nope'"):
    build_model({**cfg, "preset": "nope"}, 5).encoder_config()


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_frozen_feature_encoder_gets_no_weight_decay(optimizer):
  # PyTorch's optimizers skip requires_grad=False weights; decay alone would move them here.
  x, lengths, _ = _padded_batch()
  cfg = ConfigDict(dict(optimizer=optimizer, learning_rate=1e-2, weight_decay=0.5,
                        schedule="constant"))
  for frozen in (True, False):
    model = W2V2Classifier(num_classes=3, preset="tiny-wav2vec2", projector_size=8,
                           freeze_feature_encoder=frozen)
    params = _init(model, x, lengths)["params"]
    tx = trainer.make_optimizer(cfg, 10, model.frozen_params)
    opt_state = trainer.set_lr_scale(tx.init(params), 0.5)  # the plateau rule still reaches it
    grads = jax.jit(jax.grad(lambda p: jnp.sum(model.apply(
        {"params": p}, jnp.asarray(x), jnp.asarray(lengths))["logits"] ** 2)))(params)
    updates, _ = jax.jit(tx.update)(grads, opt_state, params)
    moved = lambda tree: max(float(jnp.max(jnp.abs(u))) for u in jax.tree.leaves(tree))
    assert (moved(updates["wav2vec2"]["feature_extractor"]) == 0.0) == frozen
    assert moved(updates["wav2vec2"]["encoder"]) > 0.0
    assert moved(updates["classifier"]) > 0.0


# ----------------------------------------------------------------------------- configs end to end


def _count_loads(monkeypatch):
  """Counts the checkpoint loads of W2V2Classifier (trainer.create_state's load_pretrained hook)."""
  original, loads = W2V2Classifier.load_pretrained, []

  def load_pretrained(self, variables):
    loaded = original(self, variables)
    loads.append(loaded is not variables)
    return loaded

  monkeypatch.setattr(W2V2Classifier, "load_pretrained", load_pretrained)
  return loads


def test_cremad_config_end_to_end_with_a_tiny_hf_teacher(tmp_path, monkeypatch):
  import fixtures
  from jaxser import io_utils, train
  from jaxser.data import cremad
  from tiny_config import load_config
  root, _ = fixtures.make_cremad(tmp_path / "cremad")
  # Five clips per class (actors 1004-1008) so that a stratified 20% test split has every class.
  for k, (code, _) in enumerate(sorted(cremad.EMOTION_CODES.items()) * 5):
    fixtures.write_wav(os.path.join(root, "AudioWAV", f"{1004 + k % 5}_IEO_{code}_XX.wav"),
                       2400 + 37 * k, 16000, seed=100 + k, freq=120 + 9 * k)
  tm = _hf_classifier("tiny-wav2vec2", tmp_path / "teacher", projector=16)
  loads = _count_loads(monkeypatch)

  c = load_config("litecnn_kd_cremad")
  c.corpus.manual_dir = root
  c.train.update(dict(epochs=2, batch_size=8, eval_batch_size=8))
  c.stages.teacher.model.update(dict(checkpoint=str(tmp_path / "teacher"), projector_size=16))
  c.stages.teacher.train.epochs = 1
  for s in ("student_alone", "student_kd"):
    c.stages[s].model.update(dict(stem_features=4, block_features=(4, 8, 8), hidden=8,
                                  pool_length=8))
  c.report.latency_repeats = 3
  rep = train.run(c, str(tmp_path / "run"), skip_bad_files=True)  # the fixture's broken clips

  assert loads == [True]  # the teacher stage started from the checkpoint, once
  p = rep["protocol"]
  assert (p["name"], p["label"], p["folds"]) == ("stratified_random", "speaker-dependent", 1)
  # A stratified random split draws test clips from several actors: the report lists them.
  assert len(p["test_speakers"]) == 1 and len(p["test_speakers"][0]) > 1
  assert p["normalization"] == {s: "none" for s in ("teacher", "student_alone", "student_kd")}
  assert p["refit"] == [] and p["transductive"] is False
  assert rep["summary"]["teacher"]["params"] == sum(p.numel() for p in tm.parameters())
  eff = rep["efficiency"]
  assert eff["student_kd"]["input_shape"] == [16000]
  assert set(eff["student_kd"]["latency_ratio"]) == {"teacher"}
  assert eff["teacher"]["latency_ratio"] == {}
  assert [(p["a"], p["b"]) for p in rep["compare"]] == [("student_kd", "student_alone"),
                                                        ("teacher", "student_kd")]
  md = (tmp_path / "run" / "report.md").read_text()
  assert "speaker-dependent" in md and "macro precision" in md and "| teacher / stage |" in md
  kd = io_utils.read_json(tmp_path / "run" / "fold_0" / "student_kd" / "result.json")
  assert kd["epochs_run"] == 2 and set(kd["history"][0]) >= {"train/ce", "train/kd"}


def test_emodb_config_end_to_end_on_a_tiny_subset(tmp_path, monkeypatch):
  import fixtures
  from jaxser import io_utils, train
  from jaxser.data import teacher_cache
  from tiny_config import load_config
  c = load_config("litecnn_kd_emodb")
  assert c.corpus.manual_dir == os.path.normpath(os.path.join(ROOT, "..", "shared", "data",
                                                              "emodb"))
  root, _ = fixtures.make_emodb(tmp_path / "emodb")
  c.corpus.manual_dir = root
  c.protocol.max_folds = 1
  # Batch 1: with two validation speakers one training clip is left, one window per epoch.
  c.train.update(dict(epochs=2, batch_size=1, eval_batch_size=4))
  # 0.1 s windows of the 0.2-0.4 s fixture clips; the real Whisper-base teacher, on-disk caches
  # in the run directory.
  for s in ("teacher", "teacher_window", "teacher_compare"):
    c.stages[s].train.epochs = 2
    c.stages[s].input.cache_dir = str(tmp_path / "features")
    c.stages[s].input.segment.update(dict(seconds=0.1, hop=0.05, eval_hop=0.1))
  c.stages.teacher.input.pad_to_30s = False  # the clip's own frames: a fast test
  for s in ("student_alone", "student_kd", "student_kd_compare"):
    c.stages[s].input.segment.update(dict(seconds=0.1, hop=0.05, eval_hop=0.1))
    c.stages[s].model.update(dict(stem_features=4, stem_kernel=8, block_features=(4, 8, 8),
                                  hidden=8, pool_length=8))
  c.report.latency_repeats = 3
  rep = train.run(c, str(tmp_path / "run"))
  p = rep["protocol"]
  assert (p["name"], p["label"], p["folds"]) == ("leave_one_speaker_out", "speaker-independent", 1)
  assert len(p["test_speakers"][0]) == 1  # one held-out speaker per fold
  assert len(p["valid_speakers"][0]) == 2
  assert not set(p["test_speakers"][0]) & set(p["valid_speakers"][0])
  assert p["refit"] == ["teacher", "teacher_window", "teacher_compare"]
  assert p["transductive"] is False
  assert len(rep["corpus"]["classes"]) == 7
  eff = rep["efficiency"]
  assert eff["student_alone"]["input_shape"] == [1600]  # one 0.1 s window
  assert eff["teacher"]["input_shape"] == [7 * 512]  # Whisper-base: 7 layer means
  assert eff["teacher_window"]["input_shape"] == [7 * 512]
  assert eff["teacher_compare"]["input_shape"] == [6373]
  # A teacher on frozen Whisper layers counts the whole encoder (every weight of the checkpoint's
  # encoder) in its params, and the encoder's MACs on one 0.1 s window in its MACs.
  from jaxser.models import pretrained
  _, whisper_params, _ = pretrained.load_whisper(c.stages.teacher.input.checkpoint)
  encoder = sum(np.size(v) for v in jax.tree.leaves(whisper_params))
  head = 7 + 512 * 7 + 7  # a weight per layer, then Dense 512 -> 7 classes
  assert encoder > 19e6 and eff["teacher"]["params"] == encoder + head
  assert eff["teacher"]["macs"] > 1e3 * eff["teacher_compare"]["macs"]
  # The teachers' feature time (Whisper encoder, opensmile) counts in their totals.
  teacher, student = eff["teacher"], eff["student_alone"]
  assert teacher["feature_ms"] > student["feature_ms"] >= 0.0
  assert teacher["total_ms"] == pytest.approx(teacher["feature_ms"] + teacher["latency_ms"])
  # The KD student's training examples are windows, each with the teacher's logits for it.
  kd = io_utils.read_json(tmp_path / "run" / "fold_0" / "student_kd" / "result.json")
  cache = teacher_cache.read(str(tmp_path / "run" / "fold_0" / "cache" / "teacher"))
  assert all("/seg" in i or "/eval" in i for i in cache.ids.tolist())
  assert kd["predictions"]["ids"] and all("/" not in i for i in kd["predictions"]["ids"])
  assert rep["compare"][0]["folds"] == 1
  # Reporting again with every stage done earlier measures the same shapes from one clip
  # per stage, without running Whisper and opensmile over the corpus.
  from jaxser.data import inputs as inputs_lib
  built = []
  build = inputs_lib.build_inputs
  def counted(corpus, cfg):
    built.append((corpus.name, len(corpus.utterances)))
    return build(corpus, cfg)

  monkeypatch.setattr(inputs_lib, "build_inputs", counted)
  again = train.run(c, str(tmp_path / "run"))
  # one random clip per stage (its shape), a few for feature times; never the run's corpus
  assert {n for n, _ in built} == {"example", "timing"}
  assert {k for n, k in built if n == "example"} == {1}
  assert {k: v["input_shape"] for k, v in again["efficiency"].items()} == \
      {k: v["input_shape"] for k, v in eff.items()}
