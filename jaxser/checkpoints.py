"""Orbax checkpoints of one stage of one fold: `latest/` for resume, `best/` for evaluation.

Orbax writes each step to a temporary directory and renames it when complete, so a
run killed mid-save leaves the previous checkpoint intact. The directory records the stage
hash it was written under (`stage_hash`), so a changed stage config never resumes from it.
With several processes all of them save and restore together (Orbax's saves are collective,
into a directory every process sees); only process 0 deletes or marks directories.
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp

from jaxser import distributed, io_utils


class StageCheckpoints:
  """The `latest` and `best` checkpoint managers under `directory`."""

  def __init__(self, directory: str, stage_hash: Optional[str] = None, discard: bool = False):
    """`stage_hash`: the config the checkpoints belong to; ones written under another hash
    (or any, with `discard`) are deleted, so the stage starts afresh instead of resuming.
    Without `stage_hash` (opening checkpoints to read them) nothing is checked or deleted."""
    self.directory = os.path.abspath(directory)
    if distributed.is_main():  # the others wait below, then open what it left
      self._check_hash(stage_hash, discard)
    distributed.barrier(f"checkpoints {directory}")  # the path as given: the same everywhere
    # cleanup_tmp_directories: a save cut short by a kill leaves a temporary step folder,
    # deleted here (one process per fold: jaxser.locks).
    opts = ocp.CheckpointManagerOptions(max_to_keep=1, create=True, cleanup_tmp_directories=True,
                                        enable_async_checkpointing=False)
    self._latest = ocp.CheckpointManager(os.path.join(self.directory, "latest"), options=opts)
    self._best = ocp.CheckpointManager(os.path.join(self.directory, "best"), options=opts)

  def _check_hash(self, stage_hash: Optional[str], discard: bool):
    """Deletes checkpoints of another stage config (or all, with `discard`); marks the rest."""
    marker = os.path.join(self.directory, "stage_hash")
    if os.path.isdir(self.directory):
      # No marker: written before markers existed, so only `discard` tells it apart.
      old = open(marker).read().strip() if os.path.exists(marker) else None
      if discard or (stage_hash is not None and old not in (None, stage_hash)):
        why = (f"stage hash {old}, now {stage_hash}" if old not in (None, stage_hash)
               else "the stage's result.json was of another config")
        print(f"{self.directory}: checkpoints of another config of this stage ({why}); "
              "deleted, the stage starts afresh")
        shutil.rmtree(self.directory)
    if stage_hash is not None:
      os.makedirs(self.directory, exist_ok=True)
      io_utils.write_text(marker, stage_hash)

  def _save(self, manager, step: int, state, meta: dict):
    if step in manager.all_steps():
      # A run killed after saving `best` and before `latest` repeats that epoch on resume
      # and arrives at the same step: the saved one is of the same epoch, and Orbax will not
      # overwrite a step (force=True notwithstanding), so it stays.
      return
    with io_utils.on_full_disk(str(manager.directory)):
      manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                 meta=ocp.args.JsonSave(meta)), force=True)
      manager.wait_until_finished()

  def save_latest(self, step: int, state, meta: dict):
    self._save(self._latest, step, state, meta)

  def save_best(self, step: int, state, meta: dict):
    self._save(self._best, step, state, meta)

  def _restore(self, manager, abstract_state) -> Optional[tuple[Any, dict]]:
    step = manager.latest_step()
    if step is None:
      return None
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
    out = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    return out.state, out.meta

  def restore_latest(self, abstract_state):
    """(state, meta) of the latest checkpoint, or None when there is none."""
    return self._restore(self._latest, abstract_state)

  def has_best(self) -> bool:
    return self._best.latest_step() is not None

  def restore_best(self, abstract_state):
    return self._restore(self._best, abstract_state)

  def close(self):
    self._latest.close()
    self._best.close()
