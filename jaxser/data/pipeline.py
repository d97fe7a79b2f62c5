"""tf.data pipelines that join a stage's inputs with cached teacher outputs by utterance id."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf

from jaxser.data.inputs import InputArrays
from jaxser.errors import UserError
from jaxser.data.teacher_cache import TeacherCache


# Cache arrays up to this size become tensors; larger ones (e.g. MLKD's per-layer hidden
# states) stay memory-mapped on disk and each batch reads only its rows.
IN_MEMORY_BYTES = 512 << 20


# Fixed map parallelism and prefetch depth instead of AUTOTUNE: the autotuner gives every
# iterator a model thread, and dropping a used iterator waits for that thread, which took
# 13-18 s per epoch with the training step busy on the same core (DKDFMH on EmoDB, 2-core CPU).
MAP_PARALLELISM = 2
PREFETCH = 2


def _options() -> tf.data.Options:
  options = tf.data.Options()
  options.autotune.enabled = False
  return options


def _held(array: np.ndarray):
  return tf.constant(np.asarray(array)) if array.nbytes <= IN_MEMORY_BYTES else array


def _gather(held, rows):
  if isinstance(held, np.ndarray):
    out = tf.numpy_function(lambda r: np.asarray(held[r]), [rows], tf.as_dtype(held.dtype),
                            stateful=False)
    out.set_shape(rows.shape.concatenate(held.shape[1:]))
  else:
    out = tf.gather(held, rows)
  return tf.cast(out, tf.float32) if out.dtype == tf.float16 else out


def _table(ids: np.ndarray) -> tf.lookup.StaticHashTable:
  init = tf.lookup.KeyValueTensorInitializer(tf.constant(ids.astype(str)),
                                             tf.range(len(ids), dtype=tf.int64))
  return tf.lookup.StaticHashTable(init, default_value=-1)


class Pipeline:
  """Batches of {x, length, label, mask, teacher: {name: {key: array}}} for lists of ids
  (and `fields`: {name: array} when the inputs have extra model inputs, e.g. speakers).

  Inputs and caches are held as tensors once (cache arrays over `IN_MEMORY_BYTES` are read
  from their memory-mapped files batch by batch); each epoch only re-orders ids, with a
  permutation drawn from (seed, epoch), so a resumed run sees the same batches.
  """

  def __init__(self, inputs: InputArrays, caches: Mapping[str, TeacherCache] | None = None):
    self.inputs = inputs
    self.caches = dict(caches or {})
    self._known = set(inputs.ids.tolist())
    with tf.device("/cpu:0"):
      self._rows = _table(inputs.ids)
      self._x = tf.constant(inputs.x)
      self._length = tf.constant(inputs.length)
      self._label = tf.constant(inputs.label)
      self._fields = {k: tf.constant(v) for k, v in (inputs.fields or {}).items()}
      self._teachers = {}
      for name, cache in self.caches.items():
        self._teachers[name] = (_table(cache.ids),
                                {k: _held(v) for k, v in cache.arrays.items()})

  def _join(self, ids):
    rows = self._rows.lookup(ids)
    batch = {"x": tf.gather(self._x, rows), "length": tf.gather(self._length, rows),
             "label": tf.gather(self._label, rows),
             "mask": tf.ones_like(rows, dtype=tf.float32)}
    if self._fields:  # extra model inputs (dialogue speakers), passed as keywords
      batch["fields"] = {k: tf.gather(v, rows) for k, v in self._fields.items()}
    if self._teachers:
      batch["teacher"] = {}
      for name, (table, arrays) in self._teachers.items():
        trows = table.lookup(ids)
        batch["teacher"][name] = {k: _gather(v, trows) for k, v in arrays.items()}
    return batch

  def _check(self, ids: Sequence[str]):
    missing = [i for i in ids if i not in self._known]
    if missing:
      raise KeyError(f"{len(missing)} ids have no inputs (e.g. {missing[:3]})")
    for cache in self.caches.values():
      cache.rows(ids)  # raises naming the cache and the missing ids

  def _augmented(self, augment, epoch: int):
    """`_join`, then `augment(ids, x, length, epoch)` replaces the batch's x (NumPy, on host)."""
    def join(ids):
      batch = self._join(ids)
      x = tf.numpy_function(lambda i, x, n: augment(i, x, n, epoch),
                            [ids, batch["x"], batch["length"]], tf.float32, stateful=False)
      x.set_shape(batch["x"].shape)
      return {**batch, "x": x}
    return join

  def dataset(self, ids: Sequence[str], batch_size: int, *, train: bool, seed: int = 0,
              epoch: int = 0, augment=None) -> tf.data.Dataset:
    """Train: shuffled full batches. Eval: in order, last batch padded with mask 0.

    `augment(ids, x, length, epoch) -> x` (e.g. data.augment.NoiseAugment) alters training
    batches; it must depend only on its arguments, so batches stay reproducible.
    """
    ids = np.asarray(list(ids))
    self._check(ids.tolist())
    if train:
      if len(ids) < batch_size:
        raise UserError(f"only {len(ids)} training examples for batch size {batch_size}; "
                         "lower config.train.batch_size")
      ids = ids[np.random.default_rng([seed, epoch]).permutation(len(ids))]
    else:
      pad = -len(ids) % batch_size
      # Padding rows repeat the first id and are masked out.
      mask = np.concatenate([np.ones(len(ids), np.float32), np.zeros(pad, np.float32)])
      ids = np.concatenate([ids, np.repeat(ids[:1], pad)])
    ds = tf.data.Dataset.from_tensor_slices(ids).batch(batch_size, drop_remainder=train)
    join = self._augmented(augment, epoch) if (train and augment is not None) else self._join
    ds = ds.map(join, num_parallel_calls=MAP_PARALLELISM, deterministic=True)
    if not train:
      masks = tf.data.Dataset.from_tensor_slices(mask).batch(batch_size)
      ds = tf.data.Dataset.zip(ds, masks).map(lambda b, m: {**b, "mask": m})
    return ds.prefetch(PREFETCH).with_options(_options())
