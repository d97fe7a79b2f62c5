"""Several processes, one per host (or several on one machine), as one JAX program.

`initialize` starts `jax.distributed` before anything touches devices; afterwards
`jax.devices()` (and so the mesh) spans every process's devices. Every process builds
the same host batches and feeds its own devices' rows (`sharding.put_batch`), outputs
are replicated back to every process, and only process 0 (`is_main`) writes files
other than Orbax checkpoints, which every process saves together.
"""

from __future__ import annotations

from typing import Optional

import jax

from jaxser.errors import UserError


def check_flags(coordinator_address: Optional[str], num_processes: Optional[int],
                process_id: Optional[int], auto: bool) -> bool:
  """Whether the flags ask for several processes; a clear error for an incomplete set."""
  given = {"--coordinator_address": coordinator_address, "--num_processes": num_processes,
           "--process_id": process_id}
  if auto or all(v is None for v in given.values()):
    return auto
  missing = [k for k, v in given.items() if v is None]
  if missing:
    raise UserError(f"{', '.join(missing)} missing: give --coordinator_address, "
                    "--num_processes and --process_id together (or --distributed alone, to "
                    "let jax.distributed detect them on a TPU pod or under SLURM)")
  if num_processes < 1 or not 0 <= process_id < num_processes:
    raise UserError(f"--process_id={process_id} with --num_processes={num_processes}: the "
                    f"process id must be in 0..{num_processes - 1}")
  if ":" not in coordinator_address:
    raise UserError(f"--coordinator_address={coordinator_address} has no port; give "
                    "host:port of process 0, e.g. localhost:12355")
  return True


def initialize(coordinator_address: Optional[str] = None, num_processes: Optional[int] = None,
               process_id: Optional[int] = None, auto: bool = False) -> bool:
  """Starts `jax.distributed` when the flags ask for it (see `check_flags`); returns whether
  it did. CPU processes talk over gloo; arguments left None are auto-detected by JAX."""
  if not check_flags(coordinator_address, num_processes, process_id, auto):
    return False
  if jax.config.jax_cpu_collectives_implementation in (None, "", "none"):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id)
  return True


def is_main() -> bool:
  """True on process 0, the one that writes results, reports, logs and caches."""
  return jax.process_index() == 0


def barrier(name: str) -> None:
  """Waits until every process reaches `name` (e.g. after process 0 wrote a file the
  others read); nothing to wait for in a single process."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)
