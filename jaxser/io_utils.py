"""Atomic file writes: write to a temporary name in the same directory, then rename.

A write that finds the disk full (or the quota spent) fails with a UserError naming the
path and the space left, not an OSError from deep inside a library. What is written gets the
permissions of a plain open() / mkdir (the umask's), not tempfile's owner-only ones.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
import tempfile

from jaxser.errors import UserError

_FULL = (errno.ENOSPC, errno.EDQUOT)


def _free_mb(path: str) -> str:
  """Free space on the disk of `path` (its nearest existing parent), for error messages."""
  path = os.path.abspath(path)
  while not os.path.exists(path) and os.path.dirname(path) != path:
    path = os.path.dirname(path)
  try:
    return f"{shutil.disk_usage(path).free / 2**20:.0f} MB free"
  except OSError:
    return "free space unknown"


def disk_full(e: BaseException) -> bool:
  """Whether `e`, or an exception it was raised from, is a full disk or spent quota."""
  seen = set()
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    if isinstance(e, OSError) and e.errno in _FULL:
      return True
    e = e.__cause__ or e.__context__
  return False


def disk_full_error(path: str, e: BaseException) -> UserError:
  return UserError(f"no space left on the disk of {path} while writing it ({_free_mb(path)}): "
                   f"{e}; free some space there, or move it (e.g. --workdir) to a disk with more")


@contextlib.contextmanager
def on_full_disk(path: str):
  """Turns a full-disk error inside the block into a UserError naming `path`."""
  try:
    yield
  except UserError:
    raise
  except Exception as e:
    if disk_full(e):
      raise disk_full_error(path, e) from e
    raise


def check_writable(directory: str, what: str) -> None:
  """Writes and deletes a small file in `directory`; UserError naming `what` when that fails
  (no permission, read-only or full disk), so a run fails before it trains, not after."""
  try:
    fd, tmp = tempfile.mkstemp(prefix=".write_test.", dir=directory)
    try:
      os.write(fd, b"\0" * 4096)
      os.fsync(fd)
    finally:
      os.close(fd)
      os.remove(tmp)
  except OSError as e:
    why = f"no space left ({_free_mb(directory)})" if e.errno in _FULL else e.strerror
    raise UserError(f"{what} {directory} cannot be written: {why}; choose another, or fix "
                    "its permissions or free space") from e


def _new_temporary(path: str, make) -> str:
  """Creates `.<name>.<random>.tmp` beside `path` with `make(tmp)`, which must fail with
  FileExistsError on a taken name; returns it."""
  parent, name = os.path.split(os.path.abspath(path))
  while True:
    tmp = os.path.join(parent, f".{name}.{secrets.token_hex(4)}.tmp")
    try:
      make(tmp)
      return tmp
    except FileExistsError:
      continue


def _new_file(tmp: str) -> None:
  os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))


@contextlib.contextmanager
def atomic_path(path: str):
  """Yields a temporary path; on success it replaces `path` in one rename."""
  directory = os.path.dirname(os.path.abspath(path)) or "."
  tmp = None
  try:
    with on_full_disk(path):
      os.makedirs(directory, exist_ok=True)
      tmp = _new_temporary(path, _new_file)
      yield tmp
      os.replace(tmp, path)
  finally:
    if tmp is not None and os.path.exists(tmp):
      os.remove(tmp)


def write_text(path: str, text: str):
  with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
    f.write(text)


def write_json(path: str, obj):
  write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str):
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _stale_temporaries(path: str) -> list[str]:
  """Temporary siblings of `path` that `atomic_dir` made and a killed process left."""
  parent, name = os.path.split(os.path.abspath(path))
  if not os.path.isdir(parent):
    return []
  return [os.path.join(parent, n) for n in os.listdir(parent)
          if n.startswith("." + name + ".") and (n.endswith(".tmp") or n.endswith(".tmp.old"))]


@contextlib.contextmanager
def atomic_dir(path: str, clean_stale: bool = False):
  """Yields a temporary directory that replaces directory `path` when the block succeeds.

  `clean_stale`: first delete temporaries of `path` left by a killed process (a teacher cache
  can be gigabytes); only for a caller that alone writes `path` (e.g. under a fold lock).
  """
  parent = os.path.dirname(os.path.abspath(path))
  tmp = None
  try:
    with on_full_disk(path):
      for stale in _stale_temporaries(path) if clean_stale else ():
        shutil.rmtree(stale, ignore_errors=True)
      os.makedirs(parent, exist_ok=True)
      tmp = _new_temporary(path, os.mkdir)
      yield tmp
      old = None
      if os.path.exists(path):
        old = tmp + ".old"
        os.replace(path, old)
      try:
        os.replace(tmp, path)
      except BaseException:
        if old:  # put the previous contents back
          os.replace(old, path)
        raise
      if old:
        shutil.rmtree(old)
  finally:
    if tmp is not None and os.path.exists(tmp):
      shutil.rmtree(tmp)
