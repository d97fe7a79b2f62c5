"""Run-directory locks: one process at a time on a fold of a run directory.

`fold_locks(workdir, folds)` holds an exclusive `flock` on `<workdir>/<fold>/.lock` for each
fold a process runs, for as long as it runs them. Per fold, not per directory, because
processes with disjoint `--folds` share a run directory by design (scripts/run_folds.sh).
A second process on a held fold stops at once with an error naming the directory, the fold
and the holder's pid: it does not wait, because two processes on one fold are nearly always
a mistake (a command started twice, overlapping --folds), and a waiting one would sit idle
for hours and then find every stage done. The kernel drops a flock when its process dies,
SIGKILL included, so a killed run never leaves a lock behind; the file itself only names the
holder, and is deleted on a clean exit.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import sys
import time
from typing import Iterable

from jaxser.errors import UserError

LOCK_FILE = ".lock"


def _holder(path: str) -> str:
  try:
    with open(path, encoding="utf-8") as f:
      return f.read().strip() or "a process that has not yet written its pid"
  except OSError:
    return "another process"


def acquire(path: str, what: str) -> int | None:
  """An fd holding an exclusive lock on `path` (created if needed); UserError naming `what`
  and the holder when another process holds it. None where the file system has no locks."""
  while True:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      os.close(fd)
      raise UserError(f"{what} is in use by {_holder(path)}; wait for that run to end (or stop "
                      "it), or give this one other --folds") from None
    except OSError as e:
      os.close(fd)
      if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
        print(f"warning: {path}: this file system cannot lock ({e.strerror}); nothing stops "
              "a second process from running the same folds", file=sys.stderr)
        return None
      raise
    # The holder deletes the file on release: if that happened between open and flock, the
    # lock is on a deleted file, and a third process could lock a new one. Try again.
    try:
      current = os.stat(path)
    except FileNotFoundError:
      current = None
    if current is not None and os.path.samestat(os.fstat(fd), current):
      break
    os.close(fd)
  os.ftruncate(fd, 0)
  os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} (since "
               f"{time.strftime('%Y-%m-%d %H:%M:%S')})\n".encode())
  return fd


def release(path: str, fd: int | None) -> None:
  if fd is None:
    return
  with contextlib.suppress(FileNotFoundError):
    os.remove(path)  # while still held: see `acquire`
  os.close(fd)


@contextlib.contextmanager
def fold_locks(workdir: str, folds: Iterable[str], enabled: bool = True):
  """Holds the lock of every fold in `folds` under `workdir` (all or none) for the block;
  `enabled=False` (processes other than 0 of a multi-process run, which run the same folds
  in step with it) holds nothing."""
  held = []
  try:
    for fold in (folds if enabled else ()):
      directory = os.path.join(workdir, fold)
      os.makedirs(directory, exist_ok=True)
      path = os.path.join(directory, LOCK_FILE)
      held.append((path, acquire(path, f"--workdir {workdir}: {fold}")))
    yield
  finally:
    for path, fd in reversed(held):
      release(path, fd)
