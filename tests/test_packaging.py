"""The distributions: built, checked by twine, and the wheel installed into a fresh venv.

Run by ``make package-test`` (which sets ``JAXENT_PACKAGE_TEST=1``; .ci/run runs it):
building in an isolated environment and installing jax into a new virtual environment
take longer than the rest of the test suite should, so ``make test`` skips it.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import tarfile
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    os.environ.get("JAXENT_PACKAGE_TEST") != "1",
    reason="the packaging check runs with `make package-test`",
)


def source_version() -> str:
    """The version, read from its one place, ``jaxent/__init__.py``."""
    text = (ROOT / "jaxent" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    assert match, "no __version__ in jaxent/__init__.py"
    return match.group(1)


def run(*args: str, cwd: pathlib.Path = ROOT) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--outdir", str(out), str(ROOT))
    return out


def only(folder: pathlib.Path, pattern: str) -> pathlib.Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, found
    return found[0]


def test_distributions_pass_twine_check(dist):
    version = source_version()
    wheel = only(dist, "*.whl")
    sdist = only(dist, "*.tar.gz")
    assert wheel.name == f"jaxent-{version}-py3-none-any.whl"
    assert sdist.name == f"jaxent-{version}.tar.gz"
    output = run(sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist))
    assert output.count("PASSED") == 2, output


def test_wheel_holds_the_package_and_its_type_marker(dist):
    names = zipfile.ZipFile(only(dist, "*.whl")).namelist()
    assert "jaxent/__init__.py" in names and "jaxent/py.typed" in names
    assert "jaxent/_src/entropy.py" in names
    assert not [n for n in names if n.startswith(("tests/", "docs/", "examples/", "benchmarks/"))]


def test_sdist_leaves_out_environments_builds_and_caches(dist):
    with tarfile.open(only(dist, "*.tar.gz")) as sdist:
        names = [n.split("/", 1)[1] for n in sdist.getnames() if "/" in n]
    assert "jaxent/py.typed" in names and "pyproject.toml" in names and "CHANGELOG.md" in names
    unwanted = re.compile(
        r"(^|/)(\.venv|site|dist|build|\.git|__pycache__|\.pytest_cache|\.mypy_cache|"
        r"\.ruff_cache|\.hypothesis)(/|$)|^docs/gallery/"
    )
    assert not [n for n in names if unwanted.search(n)]


def test_wheel_installs_and_imports_in_a_fresh_venv(dist, tmp_path):
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", str(venv))
    python = venv / "bin" / "python"
    run(str(python), "-m", "pip", "install", "--quiet", str(only(dist, "*.whl")))
    check = (
        "import pathlib, jaxent as je\n"
        "print(je.__version__)\n"
        "print(pathlib.Path(je.__file__).parent)\n"
        "print((pathlib.Path(je.__file__).parent / 'py.typed').is_file())\n"
        'print(f"{je.entropy([0.5, 0.5], base=2):.4f}")\n'
    )
    version, location, typed, bits = run(str(python), "-c", check, cwd=tmp_path).split()
    assert version == source_version()
    assert pathlib.Path(location).is_relative_to(venv)  # not this checkout
    assert typed == "True"
    assert bits == "1.0000"
