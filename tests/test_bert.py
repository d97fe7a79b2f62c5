"""Flax BERT against PyTorch transformers: a tiny random checkpoint and real all-MiniLM-L6-v2."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxser.models import pretrained
from jaxser.models import bert

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def _torch_bert(config: bert.BertConfig, seed: int = 0):
  hf = config.to_hf()
  hf.pop("architectures")
  torch.manual_seed(seed)
  model = transformers.BertModel(transformers.BertConfig(**hf)).eval()
  with torch.no_grad():
    for p in model.parameters():
      p.add_(0.1 * torch.randn_like(p))
  return model


def _compare(out_j, out_t, valid, tol):
  pairs = list(zip(out_j["hidden_states"], out_t.hidden_states))
  pairs.append((out_j["last_hidden_state"], out_t.last_hidden_state))
  assert len(out_j["hidden_states"]) == len(out_t.hidden_states)
  for ours, theirs in pairs:
    diff = np.abs(np.asarray(ours) - theirs.detach().numpy())[valid]
    assert diff.max() <= tol, diff.max()
  pooled = np.abs(np.asarray(out_j["pooler_output"]) - out_t.pooler_output.detach().numpy())
  assert pooled.max() <= tol, pooled.max()


def test_parity_tiny_bert_with_padding(tmp_path):
  config = bert.PRESETS["tiny-bert"]
  tm = _torch_bert(config)
  tm.save_pretrained(tmp_path)
  module, variables, loaded = pretrained.load_encoder(tmp_path)
  assert loaded == config
  rng = np.random.default_rng(0)
  ids = rng.integers(1, config.vocab_size, (2, 12))
  mask = np.ones_like(ids)
  mask[1, 7:] = 0
  ids[1, 7:] = config.pad_token_id
  types = np.zeros_like(ids)
  types[:, 5:] = 1
  with torch.no_grad():
    out_t = tm(torch.tensor(ids), attention_mask=torch.tensor(mask),
               token_type_ids=torch.tensor(types), output_hidden_states=True)
  out_j = jax.jit(module.apply)(variables, jnp.asarray(ids), attention_mask=jnp.asarray(mask),
                                token_type_ids=jnp.asarray(types))
  _compare(out_j, out_t, mask.astype(bool), 1e-5)


def test_real_all_minilm_l6_v2_matches_torch(minilm_dir, caplog):
  directory = minilm_dir
  with caplog.at_level("INFO", logger="jaxser.models.pretrained"):
    module, variables, config = pretrained.load_encoder(directory, family="bert")
  # Strict load succeeded: no missing / unexpected / wrong-shape tensor; the only
  # tensor left out is the position-id buffer, and it is reported.
  assert "not loaded (outside the encoder): embeddings.position_ids" in caplog.text
  assert config == bert.PRESETS["all-MiniLM-L6-v2"]
  tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
  sentences = ["I am so happy to see you again!",
               "This is terrible news, and I am angry about it.",
               "The cat sat on the mat."]
  batch = tokenizer(sentences, padding=True, return_tensors="np")
  tm = transformers.BertModel.from_pretrained(directory).eval()
  with torch.no_grad():
    out_t = tm(**{k: torch.tensor(v) for k, v in batch.items()}, output_hidden_states=True)
  out_j = jax.jit(module.apply)(variables, jnp.asarray(batch["input_ids"]),
                                attention_mask=jnp.asarray(batch["attention_mask"]),
                                token_type_ids=jnp.asarray(batch["token_type_ids"]))
  valid = batch["attention_mask"].astype(bool)
  assert not valid.all()  # the batch really is padded
  _compare(out_j, out_t, valid, 1e-4)


def test_bert_base_preset_params_equal_hf_model():
  config = bert.PRESETS["bert-base-uncased"]
  hf = config.to_hf()
  hf.pop("architectures")
  with torch.device("meta"):
    tm = transformers.BertModel(transformers.BertConfig(**hf))
  hf_shapes = {k: tuple(p.shape) for k, p in tm.named_parameters()}
  assert pretrained.hf_param_shapes(config) == hf_shapes
  assert bert.count_params(config) == sum(p.numel() for p in tm.parameters()) == 109482240
