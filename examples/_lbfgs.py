"""L-BFGS to a gradient tolerance, shared by the regression examples.

The examples import it as ``from _lbfgs import minimize_lbfgs``: a script's own folder is
the first entry of ``sys.path``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def _largest(tree) -> jax.Array:
    """max |x| over every leaf of a pytree."""
    return optax.tree_utils.tree_max(jax.tree.map(jnp.abs, tree))


def minimize_lbfgs(fun, params, *, tol: float, max_steps: int = 1000):
    """Minimises ``fun`` over a pytree with ``optax.lbfgs`` until max |gradient| <= tol.

    Stops after ``max_steps`` steps if the tolerance is not reached. Traceable: runs inside
    ``jax.jit``.

    Returns:
      The minimiser, the final max |gradient| (recomputed at the minimiser) and the number
      of steps taken.
    """
    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(fun)

    def step(carry):
        x, state = carry
        value, grad = value_and_grad(x, state=state)
        updates, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=fun)
        return optax.apply_updates(x, updates), state

    def keep_going(carry):
        _, state = carry
        count = optax.tree_utils.tree_get(state, "count")
        grad = optax.tree_utils.tree_get(state, "grad")
        return (count == 0) | ((count < max_steps) & (_largest(grad) > tol))

    params, state = jax.lax.while_loop(keep_going, step, (params, opt.init(params)))
    steps = optax.tree_utils.tree_get(state, "count")
    return params, _largest(jax.grad(fun)(params)), steps
