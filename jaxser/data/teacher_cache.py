"""Teacher-output cache: one directory per (fold, teacher) of arrays keyed by utterance id.

Layout: `ids.npy` (N strings), one `<key>.npy` per output ([N, ...]: logits,
embedding, per-layer hidden states with `frame_mask`) and `meta.json` recording
the teacher checkpoint step and config hash, so a stale cache is detected and
rebuilt. Arrays are memory-mapped on read, so large hidden states stay on disk.
"""

from __future__ import annotations

import dataclasses
import os

import flax
import jax
import numpy as np

from jaxser import io_utils

PARAMS_FILE = "params.msgpack"


@dataclasses.dataclass
class TeacherCache:
  ids: np.ndarray  # [N] str
  arrays: dict[str, np.ndarray]  # key -> [N, ...]
  meta: dict

  def rows(self, ids) -> np.ndarray:
    """Row of every id in `ids`; a clear error lists ids the cache does not hold."""
    index = {k: i for i, k in enumerate(self.ids.tolist())}
    missing = [i for i in ids if i not in index]
    if missing:
      raise KeyError(f"teacher cache {self.meta.get('teacher')!r} has no outputs for "
                     f"{len(missing)} ids (e.g. {missing[:3]}); delete the cache directory "
                     "to rebuild it")
    return np.asarray([index[i] for i in ids], np.int64)


def write(path: str, ids, arrays: dict[str, np.ndarray], meta: dict, fp16: bool = False,
          params=None):
  """Writes a cache directory atomically; floating arrays stored as fp16 when asked.

  `params` (a pytree), when given, is stored too (`params.msgpack`), for a later stage
  that starts from the teacher's weights (`read_params`).
  """
  ids = np.asarray(list(ids))
  for key, arr in arrays.items():
    if len(arr) != len(ids):
      raise ValueError(f"teacher output {key!r} has {len(arr)} rows for {len(ids)} ids")
  with io_utils.atomic_dir(path) as tmp:
    np.save(os.path.join(tmp, "ids.npy"), ids)
    for key, arr in arrays.items():
      arr = np.asarray(arr)
      if fp16 and np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float16)
      np.save(os.path.join(tmp, f"{key}.npy"), arr)
    if params is not None:
      with open(os.path.join(tmp, PARAMS_FILE), "wb") as f:
        f.write(flax.serialization.msgpack_serialize(jax.device_get(params)))
    io_utils.write_json(os.path.join(tmp, "meta.json"), {**meta, "keys": sorted(arrays)})


def read(path: str) -> TeacherCache:
  meta = io_utils.read_json(os.path.join(path, "meta.json"))
  ids = np.load(os.path.join(path, "ids.npy"))
  arrays = {k: np.load(os.path.join(path, f"{k}.npy"), mmap_mode="r") for k in meta["keys"]}
  return TeacherCache(ids, arrays, meta)


def read_if_fresh(path: str, expected: dict):
  """The cache at `path` if its meta matches `expected` on every key, else None."""
  if not os.path.exists(os.path.join(path, "meta.json")):
    return None
  cache = read(path)
  if any(cache.meta.get(k) != v for k, v in expected.items()):
    return None
  return cache


def read_params(path: str):
  """The teacher params stored with the cache at `path`, or None when it holds none."""
  file = os.path.join(path, PARAMS_FILE)
  if not os.path.exists(file):
    return None
  with open(file, "rb") as f:
    return flax.serialization.msgpack_restore(f.read())
