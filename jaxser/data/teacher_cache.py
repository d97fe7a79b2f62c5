"""Teacher-output cache: one directory per (fold, teacher) of arrays keyed by utterance id.

Layout: `ids.npy` (N strings), one `<key>.npy` per output ([N, ...]: logits,
embedding, per-layer hidden states with `frame_mask`) and `meta.json` recording
the teacher checkpoint step and config hash, so a stale cache is detected and
rebuilt. Arrays are memory-mapped on read, so large hidden states stay on disk.
"""

from __future__ import annotations

import dataclasses
import errno
import os
from typing import Iterable

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
  write_batches(path, ids, [arrays], meta, fp16, params)


def write_batches(path: str, ids, batches: Iterable[dict[str, np.ndarray]], meta: dict,
                  fp16: bool = False, params=None):
  """`write` for outputs that arrive batch by batch (rows in `ids` order): each batch goes
  straight into the memory-mapped files, so the whole cache is never in memory at once."""
  ids = np.asarray(list(ids))
  files, filled = {}, 0
  with io_utils.atomic_dir(path, clean_stale=True) as tmp:  # one writer per fold: jaxser.locks
    np.save(os.path.join(tmp, "ids.npy"), ids)
    for batch in batches:
      sizes = sorted({len(a) for a in batch.values()})
      if (files and set(batch) != set(files)) or len(sizes) != 1 or filled + sizes[0] > len(ids):
        raise ValueError(f"teacher outputs {sorted(batch)} of {sizes} rows after {filled} "
                         f"written do not fit {len(ids)} ids")
      for key, arr in batch.items():
        arr = np.asarray(arr)
        if key not in files:
          dtype = np.float16 if fp16 and np.issubdtype(arr.dtype, np.floating) else arr.dtype
          files[key] = _open_rows(os.path.join(tmp, f"{key}.npy"), dtype,
                                  (len(ids),) + arr.shape[1:])
        files[key][filled:filled + len(arr)] = arr
      filled += sizes[0]
    if filled != len(ids):
      raise ValueError(f"teacher outputs have {filled} rows for {len(ids)} ids")
    keys = sorted(files)
    for f in files.values():
      if isinstance(f, np.memmap):
        f.flush()
    del files  # close the maps before the directory is renamed into place
    if params is not None:
      with open(os.path.join(tmp, PARAMS_FILE), "wb") as f:
        f.write(flax.serialization.msgpack_serialize(jax.device_get(params)))
    io_utils.write_json(os.path.join(tmp, "meta.json"), {**meta, "keys": keys})


def _open_rows(file: str, dtype, shape) -> np.ndarray:
  """A writable array saved as `file` (.npy): memory-mapped unless empty (mmap needs a byte).

  The file's blocks are reserved first: a full disk then fails here with an OSError
  (ENOSPC, which `io_utils.atomic_dir` names), not later with SIGBUS on a mapped page.
  """
  if int(np.prod(shape)) == 0:
    np.save(file, np.zeros(shape, dtype))
    return np.zeros(shape, dtype)
  rows = np.lib.format.open_memmap(file, mode="w+", dtype=dtype, shape=shape)
  if not hasattr(os, "posix_fallocate"):  # macOS
    return rows
  fd = os.open(file, os.O_RDWR)
  try:
    os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
  except OSError as e:
    if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):  # no fallocate there
      raise
  finally:
    os.close(fd)
  return rows


def read(path: str) -> TeacherCache:
  meta = io_utils.read_json(os.path.join(path, "meta.json"))
  ids = np.load(os.path.join(path, "ids.npy"))
  arrays = {k: np.load(os.path.join(path, f"{k}.npy"), mmap_mode="r") for k in meta["keys"]}
  return TeacherCache(ids, arrays, meta)


def read_if_fresh(path: str, expected: dict):
  """The cache at `path` if its meta matches `expected` on every key and every array file
  is there (a checkout may lack the large ones), else None."""
  meta_file = os.path.join(path, "meta.json")
  if not os.path.exists(meta_file):
    return None
  files = ["ids"] + io_utils.read_json(meta_file)["keys"]
  if not all(os.path.exists(os.path.join(path, f"{k}.npy")) for k in files):
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
