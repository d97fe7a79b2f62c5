"""scripts/bench.py: its --quick run end to end (every model, both frameworks, JSON and
markdown written), its options, and the full-size PyTorch twins' parameter counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from tiny_config import ROOT

pytest.importorskip("torch")
pytest.importorskip("transformers")

sys.path.insert(0, os.path.join(ROOT, "scripts"))
import bench  # noqa: E402
import bench_torch  # noqa: E402


def test_quick_run_writes_a_row_per_model_and_mode(tmp_path):
  out = tmp_path / "bench"
  env = {**os.environ, "PYTHONPATH": ROOT}
  proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "bench.py"), "--quick",
                         "--out", str(out)], cwd=str(tmp_path), env=env, capture_output=True,
                        text=True, timeout=1200)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  assert (out / "bench.md").is_file() and (out / "bench.json").is_file()
  result = json.loads((out / "bench.json").read_text())
  rows = result["rows"]
  assert {r["model"] for r in rows} == set(bench.MODELS)
  for name in bench.MODELS:
    modes = [r["mode"] for r in rows if r["model"] == name]
    assert modes[0] == "train" and len(modes) == 2, (name, modes)
  for r in rows:
    assert r["jaxser_ms"] > 0 and r["torch_ms"] > 0, r["model"]
    assert r["torch_over_jaxser"] == pytest.approx(r["torch_ms"] / r["jaxser_ms"])
    assert abs(r["params_jaxser"] - r["params_torch"]) <= 0.01 * r["params_jaxser"]
    assert r["xla_gflop"] > 0 and r["pct_jnp_dot_peak"] > 0, r["model"]
    assert 0 <= r["cpu_pct_jaxser"] and 0 <= r["cpu_pct_torch"]
    for side in ("jaxser", "torch"):
      assert len(r["timing"][side]["blocks"]) == 1
      assert len(r["timing"][side]["blocks"][0]["ms"]) == 2
  head = result["header"]
  assert head["jnp_dot_gflops"] > 0 and head["torch_mm_gflops"] > 0
  assert set(head["pipelines"]) == {"litecnn", "dkdfmh"}
  assert all(p["pipeline_batches_per_s"] > 0 for p in head["pipelines"].values())
  table = (out / "bench.md").read_text()
  assert table.count("\n| ") == 2 + len(rows)  # header, rule, one line per row
  assert "jnp.dot" in table and "Pipeline vs step, dkdfmh" in table


def test_options():
  args = bench.parse_args(["--models", "dkdfmh, litecnn", "--quick", "--steps", "5"])
  assert args.models == ["dkdfmh", "litecnn"]
  assert bench.settings_of(args) == bench.Settings(warmup=1, steps=5, blocks=1, quick=True)
  assert bench.settings_of(bench.parse_args([])) == bench.Settings(3, 10, 3, False)
  with pytest.raises(SystemExit):
    bench.parse_args(["--models", "litecnn,resnet"])


def test_help_explains_the_models(capsys):
  with pytest.raises(SystemExit) as e:
    bench.parse_args(["--help"])
  assert e.value.code == 0
  text = capsys.readouterr().out
  for word in bench.MODELS + ("--quick", "--models", "--out", "jnp.dot", "getloadavg"):
    assert word in text


@pytest.mark.parametrize("name", bench.MODELS)
def test_full_size_twins_have_the_same_parameter_count(name):
  spec = bench.SPECS[name](False)
  model = bench.build_model(spec.model_cfg, bench.NUM_CLASSES)
  one = bench.make_batch(spec, 1, spec.infer_seconds[0], np.random.default_rng(0))
  shapes = jax.eval_shape(lambda: model.init({"params": jax.random.PRNGKey(0),
                                              "dropout": jax.random.PRNGKey(0)},
                                             one["x"], one["length"], train=False))
  ours = bench.param_count(shapes["params"])
  theirs = bench_torch.param_count(bench_torch.twin(model, bench.NUM_CLASSES))
  bench.check_params(name, ours, theirs)
  assert ours == theirs
