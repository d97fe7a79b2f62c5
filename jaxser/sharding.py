"""Device mesh and shardings: batch split on a `data` axis, state replicated.

With several processes (`jaxser.distributed`) the mesh spans every process's devices;
each process holds the whole host batch and places only its own devices' rows.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh over all (or the given) devices with axis name `data`."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), ("data",))


def data_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P("data"))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def check_batch_size(batch_size: int, mesh: Mesh, setting: str = "config.train.batch_size"):
  """Raises a clear error when a batch cannot be split evenly over the mesh."""
  n = mesh.devices.size
  if batch_size % n:
    raise ValueError(f"{setting}={batch_size} is not divisible by the {n} devices of the mesh; "
                     f"use a multiple of {n} (e.g. {max(n, batch_size // n * n)}).")


def _global(x, sharding: NamedSharding) -> jax.Array:
  """A global array from `x`, the same whole array on every process: each process copies
  only the slices its own devices hold."""
  x = np.asarray(x)
  return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def _put(tree, sharding: NamedSharding):
  """`jax.device_put` in one process; global arrays built piece by piece with several."""
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)
  return jax.tree.map(lambda x: _global(jax.device_get(x), sharding), tree)


def put_batch(batch, mesh: Mesh):
  """Places a host batch (pytree of numpy arrays, leading dim = batch) on the mesh; with
  several processes every process passes the same global batch and feeds its rows."""
  sharding = data_sharding(mesh)
  return jax.tree.map(lambda x: _put(x, sharding), batch)


def put_replicated(tree, mesh: Mesh):
  """Copies `tree` (the same on every process) to every device of the mesh."""
  return _put(tree, replicated(mesh))


def output_sharding(mesh: Mesh) -> NamedSharding:
  """Where step outputs read on the host go: split over the devices in one process, copied
  to every device with several (a process can only read its own devices)."""
  return data_sharding(mesh) if jax.process_count() == 1 else replicated(mesh)
