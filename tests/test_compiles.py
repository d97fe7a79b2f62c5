"""XLA compilations per run: bounded by stages and shapes, not by epochs or folds."""

import jax

from jaxser import train
from tiny_config import tiny_mlps

EVENT = "/jax/core/compile/backend_compile_duration"


def _compiles(config, workdir) -> int:
  """Backend compilations (XLA programs built) while `config` runs in `workdir`."""
  count = [0]

  def listen(event, duration, **kwargs):
    if event == EVENT:
      count[0] += 1

  jax.monitoring.register_event_duration_secs_listener(listen)
  try:
    train.run(config, str(workdir))
  finally:
    jax.monitoring.unregister_event_duration_listener(listen)
  return count[0]


def _config(epochs, folds):
  c = tiny_mlps(epochs)
  c.protocol.max_folds = folds
  return c


def test_compilations_do_not_grow_with_epochs_or_folds(tmp_path):
  _compiles(_config(1, 1), tmp_path / "warm")  # eager ops of the report, metrics, cache I/O
  short = _compiles(_config(2, 1), tmp_path / "short")
  longer = _compiles(_config(4, 1), tmp_path / "longer")
  two_folds = _compiles(_config(2, 2), tmp_path / "two_folds")
  assert short == longer, (short, longer)  # no compilation per epoch or per step
  # Each stage compiles its train and predict steps (and a padded last eval batch) once;
  # a second fold reuses them unless its training set gives another steps-per-epoch.
  stages = 2
  assert short <= 3 * stages, short
  assert two_folds <= 2 * short, (short, two_folds)
