"""Pooling layers against PyTorch: values and gradients, ties included."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxser.models import layers

torch = pytest.importorskip("torch")


def _ties(shape, seed):
  """Small integers, so that many windows hold their maximum twice."""
  return np.random.default_rng(seed).integers(-2, 3, shape).astype(np.float32)


@pytest.mark.parametrize("t,window,stride", [(17, 3, 2), (16, 3, 2), (12, 2, 2), (9, 3, 1),
                                             (10, 4, 3)])
@pytest.mark.parametrize("make", [_ties, lambda s, seed: np.random.default_rng(seed)
                                  .standard_normal(s).astype(np.float32)])
def test_max_pool1d_matches_torch_values_and_gradients(t, window, stride, make):
  x = make((3, t, 5), 0)
  cot = np.random.default_rng(1).standard_normal((3, (t - window) // stride + 1, 5)) \
      .astype(np.float32)
  y, vjp = jax.vjp(lambda a: layers.max_pool1d(a, window, stride), jnp.asarray(x))
  (dx,) = vjp(jnp.asarray(cot))
  xt = torch.tensor(x.transpose(0, 2, 1), requires_grad=True)
  yt = torch.nn.functional.max_pool1d(xt, window, stride)
  yt.backward(torch.tensor(cot.transpose(0, 2, 1)))
  np.testing.assert_array_equal(np.asarray(y), yt.detach().numpy().transpose(0, 2, 1))
  np.testing.assert_allclose(np.asarray(dx), xt.grad.numpy().transpose(0, 2, 1), atol=1e-6)
  ref = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, window, 1), (1, stride, 1), "VALID")
  np.testing.assert_array_equal(np.asarray(y), np.asarray(ref))


@pytest.mark.parametrize("hw,window,strides", [((9, 7), (2, 2), (2, 2)), ((8, 8), (3, 3), (2, 2)),
                                               ((6, 5), (2, 3), (1, 2))])
def test_max_pool2d_matches_torch_values_and_gradients(hw, window, strides):
  x = _ties((2,) + hw + (3,), 2)
  out = tuple((n - w) // s + 1 for n, w, s in zip(hw, window, strides))
  cot = np.random.default_rng(3).standard_normal((2,) + out + (3,)).astype(np.float32)
  y, vjp = jax.vjp(lambda a: layers.max_pool2d(a, window, strides), jnp.asarray(x))
  (dx,) = vjp(jnp.asarray(cot))
  xt = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
  yt = torch.nn.functional.max_pool2d(xt, window, strides)
  yt.backward(torch.tensor(cot.transpose(0, 3, 1, 2)))
  np.testing.assert_array_equal(np.asarray(y), yt.detach().numpy().transpose(0, 2, 3, 1))
  np.testing.assert_allclose(np.asarray(dx), xt.grad.numpy().transpose(0, 2, 3, 1), atol=1e-6)


def test_max_pool_gradient_is_the_same_under_jit():
  x = jnp.asarray(_ties((2, 11, 4), 4))
  f = lambda a: (layers.max_pool1d(a, 3, 2) ** 2).sum()
  np.testing.assert_array_equal(np.asarray(jax.grad(f)(x)), np.asarray(jax.jit(jax.grad(f))(x)))
