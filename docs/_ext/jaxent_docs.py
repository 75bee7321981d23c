"""The generated parts of jaxent's site: the API reference and the gallery of examples.

Both come from the code itself, so that nothing goes stale:

- the ``jaxent-api`` directive writes one autodoc entry for every name in ``jaxent.__all__``
  and in the ``__all__`` of every public submodule (found by walking the package);
- at the start of each build, every script in examples/ whose name does not start with an
  underscore is run (in its ``--quick`` mode and with ``--out`` where it has them), and
  gallery/ gets one page per script with its docstring, its printed output, the plots it
  wrote and its source.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import importlib
import inspect
import os
import pathlib
import pkgutil
import shutil
import subprocess
import sys
import tempfile
import time

from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

DOCS = pathlib.Path(__file__).resolve().parents[1]
ROOT = DOCS.parent
EXAMPLES = ROOT / "examples"
GALLERY = DOCS / "gallery"
EXAMPLE_TIMEOUT_S = 300

logger = logging.getLogger(__name__)


# --- the API reference -------------------------------------------------------------------


def public_modules() -> list[tuple[str, list[str]]]:
    """``(module name, its __all__)`` for jaxent and each public submodule, in that order."""
    import jaxent

    modules = [("jaxent", list(jaxent.__all__))]
    for info in sorted(pkgutil.iter_modules(jaxent.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"jaxent.{info.name}")
        modules.append((module.__name__, list(getattr(module, "__all__", []))))
    return modules


def public_names() -> list[str]:
    """Every public name, fully qualified (``jaxent.entropy``, ``jaxent.estimators.x``)."""
    return [f"{module}.{name}" for module, names in public_modules() for name in names]


def _autodoc_directive(qualified: str) -> str | None:
    """The autodoc directive for a public name; None for a submodule (its own section)."""
    module_name, name = qualified.rsplit(".", 1)
    obj = getattr(importlib.import_module(module_name), name)
    if inspect.ismodule(obj):
        return None
    if inspect.isclass(obj):
        return "autoclass"
    if callable(obj):
        return "autofunction"
    return "autodata"


class ApiDirective(SphinxDirective):
    """``.. jaxent-api::``: a summary table and one entry per public name, module by module."""

    def run(self):
        lines: list[str] = []
        for module, names in public_modules():
            title = f"``{module}``"
            lines += [title, "-" * len(title), "", f".. py:module:: {module}", ""]
            if module != "jaxent":
                doc = inspect.getdoc(importlib.import_module(module)) or ""
                lines += [*doc.splitlines(), ""]
            lines += [".. autosummary::", ""]
            lines += [f"   {name}" for name in names]
            lines.append("")
            for name in names:
                directive = _autodoc_directive(f"{module}.{name}")
                if directive is not None:
                    lines += [f".. {directive}:: {module}.{name}", ""]
        self.state_machine.insert_input(StringList(lines, source="<jaxent-api>"), "<jaxent-api>")
        return []


# --- the gallery -------------------------------------------------------------------------


@dataclasses.dataclass
class ExampleRun:
    name: str
    command: list[str]
    output: str
    images: list[pathlib.Path]
    seconds: float


def example_scripts() -> list[pathlib.Path]:
    """The scripts of examples/ (modules starting with an underscore are helpers)."""
    return sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))


def example_command(script: pathlib.Path, out: pathlib.Path) -> list[str]:
    """The command that runs ``script`` in its smoke mode, writing its plots to ``out``."""
    source = script.read_text()
    command = [sys.executable, str(script.relative_to(ROOT))]
    if '"--quick"' in source:
        command.append("--quick")
    if '"--out"' in source:
        command += ["--out", str(out)]
    return command


def run_example(script: pathlib.Path, out: pathlib.Path) -> ExampleRun:
    """Runs one example from the repository root; raises if it fails."""
    out.mkdir(parents=True, exist_ok=True)
    command = example_command(script, out)
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    result = subprocess.run(
        command,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=EXAMPLE_TIMEOUT_S,
        check=False,
    )
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise ExtensionError(
            f"examples/{script.name} failed (exit {result.returncode}):\n{result.stderr}"
        )
    shown = [c if not c.startswith(str(out)) else "OUT" for c in command[1:]]
    return ExampleRun(
        name=script.stem,
        command=["python", *shown],
        # The plots' folder is a temporary one: shown as OUT, as in the command.
        output=result.stdout.replace(str(out), "OUT"),
        images=sorted(out.glob("*.png")),
        seconds=seconds,
    )


def docstring_of(script: pathlib.Path) -> tuple[str, str]:
    """The script's opening docstring: its first line and the rest."""
    import ast

    doc = ast.get_docstring(ast.parse(script.read_text())) or script.stem
    first, _, rest = doc.partition("\n")
    return first.strip().rstrip("."), rest.strip()


def _indent(text: str) -> list[str]:
    return [f"   {line}" if line else "" for line in text.rstrip().splitlines()] or ["   (none)"]


def write_example_page(run: ExampleRun, script: pathlib.Path) -> None:
    title, body = docstring_of(script)
    image_dir = GALLERY / "images" / run.name
    image_dir.mkdir(parents=True, exist_ok=True)
    for image in run.images:
        shutil.copy(image, image_dir / image.name)
    lines = [
        f".. _gallery-{run.name}:",
        "",
        title,
        "=" * len(title),
        "",
        f"``examples/{script.name}``",
        "",
        body.replace("|", "\\|"),  # the scripts' docstrings are plain text: no substitutions
        "",
        "Output",
        "------",
        "",
        "Printed by ``" + " ".join(run.command) + f"`` during the build ({run.seconds:.0f} s):",
        "",
        ".. code-block:: text",
        "",
        *_indent(run.output),
        "",
    ]
    if run.images:
        lines += ["Plots", "-----", ""]
        for image in run.images:
            lines += [
                f".. image:: images/{run.name}/{image.name}",
                f"   :alt: {image.stem.replace('_', ' ')}",
                "",
            ]
    lines += [
        "Source",
        "------",
        "",
        f".. literalinclude:: ../../examples/{script.name}",
        "   :language: python",
        "",
    ]
    (GALLERY / f"{run.name}.rst").write_text("\n".join(lines))


def write_gallery_index(runs: list[ExampleRun], scripts: list[pathlib.Path]) -> None:
    lines = [
        "Gallery",
        "=======",
        "",
        "Every script in ``examples/``, run while this site was built (in its smoke mode,",
        "``--quick``, where it has one): what it printed and the plots it wrote are shown on",
        "its page, beside its source. Run one yourself from the repository root with",
        "``python examples/NAME.py``.",
        "",
        ".. toctree::",
        "   :hidden:",
        "",
        *[f"   {run.name}" for run in runs],
        "",
    ]
    for run, script in zip(runs, scripts, strict=True):
        lines += [f"- :ref:`gallery-{run.name}` (``examples/{script.name}``)", ""]
    (GALLERY / "index.rst").write_text("\n".join(lines))


def build_gallery(app: Sphinx) -> None:
    scripts = example_scripts()
    if GALLERY.exists():
        shutil.rmtree(GALLERY)
    GALLERY.mkdir()
    with tempfile.TemporaryDirectory() as tmp:
        outs = [pathlib.Path(tmp) / s.stem for s in scripts]
        workers = max(1, min(len(scripts), os.cpu_count() or 1))
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            runs = list(pool.map(run_example, scripts, outs))
        for run, script in zip(runs, scripts, strict=True):
            logger.info(f"gallery: examples/{script.name} ran in {run.seconds:.1f} s")
            write_example_page(run, script)
    write_gallery_index(runs, scripts)


def setup(app: Sphinx) -> dict[str, object]:
    app.add_directive("jaxent-api", ApiDirective)
    app.connect("builder-inited", build_gallery)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
