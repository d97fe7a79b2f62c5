"""Two processes × two fake CPU devices (jax.distributed, gloo over localhost) against one
process × four devices: the same per-step losses, evaluation and training command results.

The reference runs first, then the pair (lock-step processes slow down badly when a third
one shares the two cores).
"""

import json
import os
import re
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from jaxser import distributed
from jaxser.errors import UserError
from tiny_config import ROOT

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "JAX_PLATFORMS": "cpu"}
TIMEOUT_S = 240
TRAIN = [sys.executable, "-m", "jaxser.train", "--config", "tests/tiny_config.py"]


def _gloo_missing():
  """Why this jaxlib cannot run CPU collectives across processes, or None when it can."""
  try:
    from jax._src.lib import _jax
  except ImportError:  # cannot tell here: the runs below fail loudly if it is missing
    return None
  if hasattr(_jax, "make_gloo_tcp_collectives"):
    return None
  return "this jaxlib has no gloo CPU collectives (jax._src.lib._jax.make_gloo_tcp_collectives)"


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _start(name, args, devices, tmp_path):
  """Starts `args` in ROOT with `devices` fake CPU devices; output goes to files."""
  env = {**ENV, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
         "JAX_COMPILATION_CACHE_DIR": str(tmp_path / f"xla_{name}")}
  with open(tmp_path / f"{name}.out", "w") as out, open(tmp_path / f"{name}.err", "w") as err:
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=out, stderr=err)
  return name, proc, tmp_path / f"{name}.out", tmp_path / f"{name}.err"


# gloo's "[Gloo] Rank 1 is connected to 1 peer ranks. Expected number of connected peer ranks
# is : 1" lines; its threads may interleave two of them, leaving a line that starts mid-message
# ("1 is connected to ..." or "Expected number of ...").
GLOO_LINE = re.compile(r"\[Gloo\]|^\d+ is connected to \d+ peer ranks|"
                       r"^Expected number of connected peer ranks is")


def _read(path) -> str:
  """A process's output without gloo's connection lines."""
  return "\n".join(l for l in open(path).read().splitlines() if not GLOO_LINE.search(l))


def test_gloo_connection_lines_are_left_out_however_they_interleave(tmp_path):
  # As a fresh-clone run wrote them (the training-command test below failed on them): two
  # threads' messages on one line, the rest of one on the next.
  (tmp_path / "out").write_text(
      "[Gloo] Rank 1 is connected to 1 peer ranks. Expected number of connected peer ranks is : 1\n"
      "[Gloo] Rank 3 is connected to 3 peer ranks. [Gloo] Rank 2 is connected to 3 peer ranks. "
      "Expected number of connected peer ranks is : 3\n"
      "Expected number of connected peer ranks is : 3\n"
      "1 is connected to 3 peer ranks. Expected number of connected peer ranks is : 3\n"
      "fold_0 teacher: test UA 0.5\n")
  assert _read(tmp_path / "out") == "fold_0 teacher: test UA 0.5"


def _finish(runs) -> dict[str, str]:
  """Waits for every run (killing all past TIMEOUT_S); stdout by name, or a failure that
  shows every process's stderr."""
  deadline, codes = time.time() + TIMEOUT_S, {}
  for name, proc, _, _ in runs:
    try:
      codes[name] = proc.wait(timeout=max(deadline - time.time(), 1))
    except subprocess.TimeoutExpired:
      codes[name] = f"killed after {TIMEOUT_S} s"
      for _, p, _, _ in runs:
        if p.poll() is None:
          p.kill()
          p.wait()
  if any(c != 0 for c in codes.values()):
    report = "\n\n".join(f"--- {name}: exit {codes[name]}; stderr tail:\n{_read(err)[-3000:]}"
                         for name, _, _, err in runs)
    pytest.fail(f"a process failed:\n{report}")
  return {name: _read(out) for name, _, out, _ in runs}


def _pair(name, args, tmp_path, port):
  """Two processes of `args` on localhost:`port`, two fake CPU devices each."""
  return [_start(f"{name}{i}", args + ["--coordinator_address", f"localhost:{port}",
                                       "--num_processes", "2", "--process_id", str(i)],
                 2, tmp_path) for i in (0, 1)]


needs_gloo = pytest.mark.skipif(_gloo_missing() is not None, reason=str(_gloo_missing()))


def test_incomplete_process_flags_are_one_clear_error():
  assert distributed.check_flags(None, None, None, False) is False
  assert distributed.check_flags("localhost:1234", 2, 1, False) is True
  assert distributed.check_flags(None, None, None, True) is True  # detected by JAX
  with pytest.raises(UserError, match="--coordinator_address, --process_id missing"):
    distributed.check_flags(None, 2, None, False)
  with pytest.raises(UserError, match="must be in 0..1"):
    distributed.check_flags("localhost:1234", 2, 2, False)
  with pytest.raises(UserError, match="has no port"):
    distributed.check_flags("localhost", 2, 0, False)


@needs_gloo
def test_two_processes_give_the_losses_of_one(tmp_path):
  script = [sys.executable, os.path.join("tests", "distributed_steps.py")]
  runs = _finish([_start("one", script, 4, tmp_path)])
  runs |= _finish(_pair("two", script, tmp_path, _free_port()))
  out = {k: json.loads(v.strip().splitlines()[-1]) for k, v in runs.items()}
  one, two0, two1 = out["one"], out["two0"], out["two1"]
  assert (one["processes"], one["devices"]) == (1, 4)
  assert [(o["process"], o["processes"], o["devices"], o["local_devices"])
          for o in (two0, two1)] == [(0, 2, 4, 2), (1, 2, 4, 2)]
  assert {k: v for k, v in two0.items() if k != "process"} == \
      {k: v for k, v in two1.items() if k != "process"}  # both processes see the same
  a, b = np.asarray(one["losses"]), np.asarray(two0["losses"])
  assert len(a) == 6
  np.testing.assert_array_less(np.abs(a - b) / np.abs(a), 1e-5)
  assert abs(one["valid_loss"] - two0["valid_loss"]) <= 1e-5 * abs(one["valid_loss"])
  np.testing.assert_allclose(two0["logits"], one["logits"], rtol=1e-4, atol=1e-4)
  assert np.shape(one["logits"]) == (20, 4)  # padded rows dropped after the gather


def _result(workdir, stage):
  with open(os.path.join(workdir, "fold_0", stage, "result.json")) as f:
    return json.load(f)


@needs_gloo
def test_the_training_command_on_two_processes(tmp_path):
  out = _finish([_start("one", TRAIN + ["--workdir", str(tmp_path / "one")], 4, tmp_path)])
  out |= _finish(_pair("two", TRAIN + ["--workdir", str(tmp_path / "two")], tmp_path,
                       _free_port()))
  assert "student_kd: test UA" in out["two0"] and "UA" in out["one"]
  assert out["two1"].strip() == ""  # process 1 prints and writes nothing of its own
  for stage in ("teacher", "student_kd"):
    one, two = _result(tmp_path / "one", stage), _result(tmp_path / "two", stage)
    assert one["predictions"] == two["predictions"]
    assert {k: one["test"][k] for k in ("ua", "wa")} == {k: two["test"][k] for k in ("ua", "wa")}
    for h1, h2 in zip(one["history"], two["history"], strict=True):
      for k, v in h1.items():
        # Adam: gloo's cross-process sums round in another order; losses agree to ~1e-5.
        assert abs(h2[k] - v) <= 1e-4 * max(abs(v), 1), (stage, k, v, h2[k])
    logs = os.listdir(tmp_path / "two" / "logs" / "fold_0" / stage)
    assert len(logs) == 1, logs  # one TensorBoard file: process 0's
  assert os.path.exists(tmp_path / "two" / "report.json")
  leftovers = [f for f in os.listdir(tmp_path / "two") if f.startswith(".")]
  assert not leftovers, leftovers
