"""The documentation's sources: the concept pages' examples run, and what the site includes exists.

The site itself is built and checked in a browser by ``make docs-test`` (tests/test_site.py);
these checks need neither Sphinx nor a browser.
"""

from __future__ import annotations

import doctest
import pathlib
import re

import jax
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_page_examples_print_what_the_page_shows(page):
    """Every ``>>>`` example runs in JAX's default float32 mode and prints what is shown."""
    with jax.enable_x64(False):
        result = doctest.testfile(
            str(page),
            module_relative=False,
            optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
            verbose=False,
            report=True,
        )
    assert result.failed == 0


def test_concept_pages_show_their_numbers():
    """The worked numbers of the ideas, each on its page, each computed by an example there."""
    expected = {
        "self_information.md": ["6.6439 bits", "0.0145 bits", "3.0000 = 3.0000 bits"],
        "entropy.md": ["1.0000 bits", "0.0808 bits"],
        "cross_entropy.md": ["0.3567", "Jensen"],
        "coding.md": ["L = 2.667 bits", "L = 2.200 bits", "Kraft"],
        "squared_error.md": ["dL/dz: squared error", "(a - y)"],
        "maximum_likelihood.md": ["argmin 0.70"],
    }
    for name, snippets in expected.items():
        text = (DOCS / "concepts" / name).read_text()
        for snippet in snippets:
            assert snippet in text, (name, snippet)
        assert ">>> " in text, name


def included(page: pathlib.Path) -> list[tuple[pathlib.Path, dict[str, str]]]:
    """The ``{include}`` blocks of a MyST page: the included file and the block's options."""
    blocks = re.findall(r"```\{include\} (\S+)\n((?::[^\n]*\n)*)```", page.read_text())
    return [
        (
            (page.parent / target).resolve(),
            dict(re.findall(r":([\w-]+): ?(.*)", options)),
        )
        for target, options in blocks
    ]


def test_included_sections_exist():
    """An included README section is found by its heading: a renamed heading must fail here."""
    blocks = [block for page in PAGES for block in included(page)]
    assert len(blocks) >= 4
    for target, options in blocks:
        assert target.is_file(), target
        text = target.read_text()
        start, end = options.get("start-after"), options.get("end-before")
        for marker in (start, end):
            if marker is not None:
                assert text.count(marker.strip('"')) == 1, (target.name, marker)
        if start and end:
            body = text.split(start.strip('"'))[1].split(end.strip('"'))[0]
            assert len(body.strip()) > 200, (target.name, start)


def test_every_page_is_in_a_toctree():
    index = (DOCS / "index.md").read_text()
    for page in [*DOCS.glob("*.md"), *DOCS.glob("*.rst"), *(DOCS / "concepts").glob("*.md")]:
        name = page.relative_to(DOCS).with_suffix("").as_posix()
        if name != "index":
            assert f"\n{name}\n" in index, name
