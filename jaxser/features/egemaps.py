"""openSMILE acoustic parameters: eGeMAPSv02 (25 frame-level LLDs, 88 functionals) and
ComParE_2016 (65 LLDs, 6373 functionals), the feature set a parameter of every function.

Extraction runs on the in-memory waveform (`Smile.process_signal`), so resampled or noisy
audio is described as the model sees it. With a `cache_dir`, every result is stored as
`<cache_dir>/<key[:2]>/<key>.npy`, key = sha256 of the float32 waveform bytes, the sample
rate, the feature set and level and the opensmile version, so each distinct waveform is
extracted once across runs; files are written to a temporary name and renamed.
"""

from __future__ import annotations

import ctypes
import glob
import hashlib
import importlib.metadata
import importlib.util
import os
from typing import Sequence

import chex
import numpy as np
from tqdm import tqdm

from jaxser import io_utils

NUM_LLDS = 25  # eGeMAPSv02
NUM_FUNCTIONALS = 88
# Feature set -> (LLDs per frame, functionals per utterance).
DIMS = {"eGeMAPSv02": (NUM_LLDS, NUM_FUNCTIONALS), "ComParE_2016": (65, 6373)}
# openSMILE's longest window (the 60 ms pitch window of both sets): a shorter clip gets NaN
# features (measured: 0.06 s at 8, 16 and 22.05 kHz is the shortest with finite ones).
MIN_SECONDS = 0.06


def _load_smile_library():
  """Loads opensmile's libSMILEapi with RTLD_DEEPBIND, before `import opensmile` does.

  With TensorFlow already imported, libSMILEapi's calls bind to same-named symbols that
  TensorFlow's libraries export, and extraction corrupts the heap (malloc abort or segfault;
  seen with tensorflow-cpu 2.21 + opensmile 2.6). DEEPBIND makes the library use its own
  symbols; dlopen then hands `import opensmile` this same handle.
  """
  if not hasattr(os, "RTLD_DEEPBIND"):  # not glibc: nothing to do
    return
  spec = importlib.util.find_spec("opensmile")
  if spec is None or spec.origin is None:
    raise ImportError("opensmile is not installed; pip install 'opensmile>=2.6'")
  pattern = os.path.join(os.path.dirname(spec.origin), "core", "bin", "*", "libSMILEapi.so")
  for path in glob.glob(pattern):
    ctypes.CDLL(path, mode=os.RTLD_LOCAL | os.RTLD_DEEPBIND)


def _smile(level: str, feature_set: str):
  _load_smile_library()
  import opensmile  # local import: after the library is loaded the safe way
  lv = {"functionals": opensmile.FeatureLevel.Functionals,
        "llds": opensmile.FeatureLevel.LowLevelDescriptors}[level]
  return opensmile.Smile(feature_set=getattr(opensmile.FeatureSet, feature_set), feature_level=lv)


def _check_feature_set(feature_set: str) -> None:
  if feature_set not in DIMS:
    raise ValueError(f"opensmile feature set {feature_set!r} is not supported; "
                     f"choose one of {sorted(DIMS)}")


def cache_key(wave: np.ndarray, sample_rate: int, level: str,
              feature_set: str = "eGeMAPSv02") -> str:
  """Hex sha256 of the waveform bytes + sample rate + feature settings."""
  version = importlib.metadata.version("opensmile")  # without loading the library
  h = hashlib.sha256()
  h.update(f"{feature_set}|{level}|sr={int(sample_rate)}|opensmile={version}|".encode())
  h.update(np.ascontiguousarray(wave, np.float32).tobytes())
  return h.hexdigest()


def _check_finite(feats: np.ndarray, what: str, seconds: float, feature_set: str, level: str):
  """NaN features (openSMILE fills a clip too short for its windows with them) would reach
  the model as NaN inputs; stop here naming the clip instead."""
  bad = int(feats.size - np.count_nonzero(np.isfinite(feats)))
  if bad:
    raise ValueError(f"{feature_set} {level} of {what} ({seconds:.3f} s) hold {bad} NaN or "
                     f"infinite values; openSMILE needs at least {MIN_SECONDS} s of finite audio")


def _extract(waves: Sequence[np.ndarray], sample_rate: int, level: str, cache_dir: str | None,
             progress: bool, feature_set: str,
             names: Sequence[str] | None = None) -> list[np.ndarray]:
  _check_feature_set(feature_set)
  num_llds, num_functionals = DIMS[feature_set]
  smile = None
  out = []
  for i, w in enumerate(tqdm(waves, desc=f"{feature_set} {level}", disable=not progress,
                             leave=False)):
    w = np.ascontiguousarray(w, np.float32)
    chex.assert_rank(w, 1)
    what = names[i] if names is not None else f"waveform {i}"
    seconds = len(w) / sample_rate
    if len(w) < MIN_SECONDS * sample_rate:
      raise ValueError(f"{feature_set} {level}: {what} holds {seconds:.3f} s of audio, less "
                       f"than the {MIN_SECONDS} s openSMILE needs (its features would be NaN)")
    if not np.all(np.isfinite(w)):
      raise ValueError(f"{feature_set} {level}: {what} holds NaN or infinite samples")
    path = None
    if cache_dir is not None:
      key = cache_key(w, sample_rate, level, feature_set)
      path = os.path.join(cache_dir, key[:2], key + ".npy")
      if os.path.exists(path):
        feats = np.load(path)
        _check_finite(feats, what, seconds, feature_set, level)
        out.append(feats)
        continue
    if smile is None:
      smile = _smile(level, feature_set)
    feats = smile.process_signal(w, sample_rate).to_numpy(np.float32)
    if level == "functionals":
      feats = feats.reshape(num_functionals)
    chex.assert_axis_dimension(feats, -1, num_functionals if level == "functionals" else num_llds)
    _check_finite(feats, what, seconds, feature_set, level)
    if path is not None:
      with io_utils.atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, feats)
    out.append(feats)
  return out


def functionals(waves: Sequence[np.ndarray], sample_rate: int, cache_dir: str | None = None,
                progress: bool = True, feature_set: str = "eGeMAPSv02",
                names: Sequence[str] | None = None) -> np.ndarray:
  """Functionals [N, F] (float32) of mono waveforms: F = 88 (eGeMAPSv02), 6373 (ComParE_2016).
  A clip under MIN_SECONDS or with NaN features is an error naming it (`names[i]`)."""
  feats = _extract(waves, sample_rate, "functionals", cache_dir, progress, feature_set, names)
  return np.stack(feats) if feats else np.zeros((0, DIMS[feature_set][1]), np.float32)


def llds(waves: Sequence[np.ndarray], sample_rate: int, cache_dir: str | None = None,
         progress: bool = True, feature_set: str = "eGeMAPSv02",
         names: Sequence[str] | None = None) -> list[np.ndarray]:
  """Low-level descriptors, one [frames, D] float32 array per waveform (10 ms hop): D = 25
  (eGeMAPSv02), 65 (ComParE_2016). Short or NaN clips as in `functionals`."""
  return _extract(waves, sample_rate, "llds", cache_dir, progress, feature_set, names)
