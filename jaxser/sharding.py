"""Device mesh and shardings: batch split on a `data` axis, state replicated."""

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


def put_batch(batch, mesh: Mesh):
  """Places a host batch (pytree of numpy arrays, leading dim = batch) on the mesh."""
  sharding = data_sharding(mesh)
  return jax.tree.map(lambda x: jax.device_put(x, sharding), batch)


def put_replicated(tree, mesh: Mesh):
  return jax.device_put(tree, replicated(mesh))
