"""Sphinx configuration of jaxent's documentation site (``make docs`` builds it into site/).

The API reference is generated from ``jaxent.__all__`` and the ``__all__`` of each public
submodule, and the gallery from running every script in examples/ during the build (see
``_ext/jaxent_docs.py``). Nothing is loaded from the network: MathJax is bundled by
``sphinx-mathjax-offline`` and the furo theme uses the system's fonts.
"""

from __future__ import annotations

import pathlib
import sys

DOCS = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

import jaxent  # noqa: E402

project = "jaxent"
author = "the jaxent authors"
copyright = "the jaxent authors"
version = release = jaxent.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",
    "myst_parser",
    "jaxent_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_ext", "screenshot.png"]
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
# README sections are included below a page title, one level deeper than they were written.
suppress_warnings = ["myst.header"]

autodoc_typehints = "none"
autodoc_member_order = "bysource"
autosummary_generate = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

html_theme = "furo"
html_title = f"jaxent {release}"
html_static_path = ["_static"]
html_favicon = "_static/favicon.svg"
html_show_sourcelink = False
html_copy_source = False
html_last_updated_fmt = None
