"""Atomic file writes: write to a temporary name in the same directory, then rename."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile


@contextlib.contextmanager
def atomic_path(path: str):
  """Yields a temporary path; on success it replaces `path` in one rename."""
  directory = os.path.dirname(os.path.abspath(path)) or "."
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                             dir=directory)
  os.close(fd)
  try:
    yield tmp
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def write_text(path: str, text: str):
  with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
    f.write(text)


def write_json(path: str, obj):
  write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str):
  with open(path, encoding="utf-8") as f:
    return json.load(f)


@contextlib.contextmanager
def atomic_dir(path: str):
  """Yields a temporary directory that replaces directory `path` when the block succeeds."""
  parent = os.path.dirname(os.path.abspath(path))
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=parent)
  try:
    yield tmp
    old = None
    if os.path.exists(path):
      old = tmp + ".old"
      os.replace(path, old)
    os.replace(tmp, path)
    if old:
      shutil.rmtree(old)
  finally:
    if os.path.exists(tmp):
      shutil.rmtree(tmp)
