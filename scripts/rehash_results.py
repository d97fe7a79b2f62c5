"""Re-keys run directories written before 2026-12-06 to the stage hashes jaxser computes now.

    python scripts/rehash_results.py results/litecnn_kd_emodb [more run dirs or parents ...]

Until then a stage's hash held `corpus.manual_dir`, so a checkout at another path retrained
every stage of a committed run instead of reusing it. For each run directory (a folder with a
config.json; folders above one are searched) this maps every stage's old hash (from the
recorded config, its corpus path included) to the new one, in the files that carry a hash:
`fold_*/<stage>/result.json`, `fold_*/cache/<stage>/meta.json` and the checkpoint markers
`fold_*/<stage>/checkpoints*/stage_hash`. Files under another hash (another config's
results) are left as they are and counted. Safe to run again; run it with no training on
the directory.
"""

import argparse
import os

import ml_collections

from jaxser import io_utils, stage_plan

RESULT_FILES = ("result.json", "meta.json")
MARKER = "stage_hash"


def run_dirs(path: str) -> list[str]:
  """`path` if it holds a config.json, else every such folder under it."""
  if os.path.isfile(os.path.join(path, "config.json")):
    return [path]
  return sorted(root for root, _, files in os.walk(path) if "config.json" in files)


def hash_map(workdir: str) -> tuple[dict[str, str], set[str]]:
  """({old hash: new hash}, the new hashes) of every stage of the run's recorded config."""
  config = ml_collections.ConfigDict(io_utils.read_json(os.path.join(workdir, "config.json")))
  old = stage_plan.stage_hashes(config, with_location=True)
  new = stage_plan.stage_hashes(config)
  return {old[s]: new[s] for s in old if old[s] != new[s]}, set(new.values())


def rehash(workdir: str) -> dict[str, int]:
  """Rewrites the hashes of `workdir`'s files; {"rehashed", "current", "other"} file counts."""
  mapping, current = hash_map(workdir)
  counts = {"rehashed": 0, "current": 0, "other": 0}
  for root, _, files in os.walk(workdir):
    if root == workdir:  # config.json, corpus.json, reports: no stage hash
      continue
    for name in files:
      path = os.path.join(root, name)
      if name in RESULT_FILES:
        data = io_utils.read_json(path)
        old = data.get("hash")
      elif name == MARKER:
        with open(path) as f:
          old = f.read().strip()
      else:
        continue
      if old in mapping:
        if name == MARKER:
          io_utils.write_text(path, mapping[old])
        else:
          io_utils.write_json(path, {**data, "hash": mapping[old]})
        counts["rehashed"] += 1
      else:
        counts["current" if old in current else "other"] += 1
  return counts


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog="\n".join(__doc__.splitlines()[1:]))
  p.add_argument("paths", nargs="+", help="run directories, or folders holding them")
  args = p.parse_args()
  dirs = [d for path in args.paths for d in run_dirs(path)]
  if not dirs:
    raise SystemExit(f"no run directory (a folder with a config.json) under {args.paths}")
  for d in dirs:
    c = rehash(d)
    print(f"{d}: {c['rehashed']} files rehashed, {c['current']} already current, "
          f"{c['other']} of another config left as they are")


if __name__ == "__main__":
  main()
