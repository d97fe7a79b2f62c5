"""Config helpers: plain-dict view and a stable hash of config parts."""

from __future__ import annotations

import hashlib
import json


def to_dict(cfg):
  """A ConfigDict (or anything JSON-able) as plain JSON data."""
  return json.loads(cfg.to_json_best_effort()) if hasattr(cfg, "to_json_best_effort") else cfg


def config_hash(*parts) -> str:
  """Stable short hash of config parts (ConfigDicts or JSON-able values)."""
  blob = json.dumps([to_dict(p) for p in parts], sort_keys=True, default=str)
  return hashlib.sha1(blob.encode()).hexdigest()[:16]
