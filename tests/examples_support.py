"""Loading the example scripts (examples/ is not a package) for the example tests."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def load(name: str):
    """Imports ``examples/<name>.py`` as a module.

    The examples folder goes on ``sys.path``, where it is when a script runs, so that an
    example's imports of the modules beside it (``_lbfgs``) resolve.
    """
    if str(EXAMPLES) not in sys.path:
        sys.path.append(str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
