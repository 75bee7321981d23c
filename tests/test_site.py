"""The built documentation site, loaded page by page in a headless Chromium.

Run by ``make docs-test`` (which builds the site first and sets ``JAXENT_DOCS_TEST=1``);
skipped otherwise, so that ``make test`` neither needs a browser nor checks a stale site.
The site is served on 127.0.0.1 and every HTML page is loaded in Debian's Chromium through
chromedriver. Each page must have its formulas typeset by the bundled MathJax (no raw TeX
left in the visible text), every image loaded, no console error, no docutils error
message, and no request to any host but 127.0.0.1. The API page must have an entry for
every public name, and the gallery a page for every example. Screenshots of the home page
and the API page are written to ``site/screenshots/``.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import pathlib
import re
import shutil
import sys
import tempfile
import threading
import urllib.parse

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SITE = pathlib.Path(os.environ.get("JAXENT_SITE", ROOT / "site"))
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
)
# TeX that would show if MathJax had not typeset a formula.
RAW_TEX = re.compile(r"\$\$|\\\(|\\\[|\\(log|sum|frac|mathrm|operatorname|Vert|quad|le|ge)\b")

pytestmark = pytest.mark.skipif(
    os.environ.get("JAXENT_DOCS_TEST") != "1",
    reason="the browser check of the built site runs with `make docs-test`",
)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def server():
    """Serves site/ on 127.0.0.1 at a free port; yields the base URL."""
    assert (SITE / "index.html").exists(), f"no site at {SITE}: run `make docs` first"
    handler = functools.partial(QuietHandler, directory=str(SITE))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        assert os.access(path, os.X_OK), (
            f"{path} is missing: apt-get install chromium chromium-driver"
        )
    profile = tempfile.mkdtemp(prefix="jaxent-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    browser.set_page_load_timeout(60)
    browser.set_script_timeout(60)
    yield browser
    browser.quit()
    shutil.rmtree(profile, ignore_errors=True)


def pages() -> list[str]:
    """Every HTML page of the site, relative to its root."""
    return sorted(
        p.relative_to(SITE).as_posix()
        for p in SITE.rglob("*.html")
        if not p.relative_to(SITE).parts[0].startswith("_")
    )


# Waits for MathJax (when the page loads it) to finish typesetting, then reports the page.
INSPECT = """
const done = arguments[arguments.length - 1];
const ready = (window.MathJax && MathJax.startup && MathJax.startup.promise)
    ? MathJax.startup.promise : Promise.resolve();
ready.then(() => {
  const clone = document.body.cloneNode(true);
  clone.querySelectorAll("pre, code, script, style, mjx-container, .highlight")
      .forEach(e => e.remove());
  const math = Array.from(document.querySelectorAll(".math"));
  done({
    text: clone.textContent,
    math: math.length,
    untypeset: math.filter(e => !e.querySelector("mjx-container")).map(e => e.textContent),
    images: Array.from(document.images).map(i => [i.src, i.complete && i.naturalWidth > 0]),
    errors: Array.from(document.querySelectorAll(".system-message, .problematic"))
        .map(e => e.textContent.slice(0, 200)),
    ids: Array.from(document.querySelectorAll("[id]")).map(e => e.id),
  });
}, (err) => done({failed: String(err)}));
"""


def requested_urls(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def foreign(urls: list[str]) -> list[str]:
    """The URLs that go to a host other than 127.0.0.1.

    data: and blob: URLs stay in the page, and chrome: URLs are the browser's own
    resources (its internal pages' icons), not network requests.
    """
    bad = []
    for url in urls:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme in ("data", "blob", "about", "chrome"):
            continue
        if parsed.scheme not in ("http", "https") or parsed.hostname != "127.0.0.1":
            bad.append(url)
    return bad


@pytest.fixture(scope="module")
def loaded(server, driver):
    """Loads every page once; returns {page: report}."""
    reports = {}
    for page in pages():
        driver.get_log("performance")  # drop what earlier pages logged
        driver.get_log("browser")
        driver.get(server + page)
        report = driver.execute_async_script(INSPECT)
        report["requests"] = requested_urls(driver)
        report["console"] = [
            e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"
        ]
        reports[page] = report
    return reports


def test_every_page_loads_typesets_and_stays_offline(loaded):
    assert len(loaded) >= 10
    problems = []
    for page, r in loaded.items():
        if "failed" in r:
            problems.append(f"{page}: {r['failed']}")
            continue
        if r["untypeset"]:
            problems.append(f"{page}: formulas not typeset: {r['untypeset'][:3]}")
        raw = RAW_TEX.findall(r["text"])
        if raw:
            problems.append(f"{page}: raw TeX in the visible text: {sorted(set(raw))}")
        broken = [src for src, ok in r["images"] if not ok]
        if broken:
            problems.append(f"{page}: images not loaded: {broken}")
        if r["errors"]:
            problems.append(f"{page}: docutils errors: {r['errors']}")
        if r["console"]:
            problems.append(f"{page}: console errors: {r['console']}")
        outside = foreign(r["requests"])
        if outside:
            problems.append(f"{page}: requests outside 127.0.0.1: {outside}")
        if not r["requests"]:
            problems.append(f"{page}: no request logged (is the performance log on?)")
    assert not problems, "\n".join(problems)


def test_formulas_are_typeset_where_the_docs_have_them(loaded):
    for page in ("api.html", "concepts/entropy.html", "concepts/cross_entropy.html"):
        assert loaded[page]["math"] >= 3, page
        assert not loaded[page]["untypeset"], page
    mathjax = [u for u in loaded["concepts/entropy.html"]["requests"] if "mathjax" in u]
    assert mathjax and not foreign(mathjax)


def test_api_page_has_an_entry_for_every_public_name(loaded):
    sys.path.insert(0, str(ROOT / "docs" / "_ext"))
    from jaxent_docs import public_names

    names = public_names()
    assert "jaxent.entropy" in names
    ids = set(loaded["api.html"]["ids"])
    missing = [name for name in names if not any(name in i for i in ids)]
    assert not missing, missing


def test_gallery_has_every_example_with_its_plots(loaded):
    sys.path.insert(0, str(ROOT / "docs" / "_ext"))
    from jaxent_docs import example_scripts

    for script in example_scripts():
        page = f"gallery/{script.stem}.html"
        assert page in loaded, page
        if '"--out"' in script.read_text():
            plots = [src for src, ok in loaded[page]["images"] if script.stem in src and ok]
            assert plots, f"{page} shows no plot"


def test_benchmark_plot_is_shown(loaded):
    assert any("results" in src and ok for src, ok in loaded["benchmarks.html"]["images"])


def test_screenshots(server, driver):
    out = SITE / "screenshots"
    out.mkdir(exist_ok=True)
    for page, name in (("index.html", "home.png"), ("api.html", "api.png")):
        driver.get(server + page)
        driver.execute_async_script(INSPECT)
        assert driver.save_screenshot(str(out / name))
        assert (out / name).stat().st_size > 10_000
    print(f"screenshots in {out}", file=sys.stderr)
