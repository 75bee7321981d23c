"""The README's code runs and prints what its comments say."""

import pathlib
import re

import jax.numpy as jnp
import numpy as np

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs_and_matches_its_comments(capsys):
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert block is not None
    namespace: dict = {}
    exec(compile(block.group(1), str(README), "exec"), namespace)
    assert namespace["value"].dtype == jnp.float32
    np.testing.assert_allclose(float(namespace["value"]), 0.2019, atol=5e-5)
    grad = namespace["grad"]
    assert grad.dtype == jnp.bfloat16
    assert bool(jnp.all(jnp.isfinite(grad)))
    assert float(grad[0, 2]) == 0.0
    assert bool(jnp.all(grad[1] == 0))
    assert "0.0808" in capsys.readouterr().out
