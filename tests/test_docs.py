"""The documentation site: the generated configuration page is current, and the site builds
with ``mkdocs build --strict`` (every link between pages and every anchor resolves)."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rllib_softqmix.core.validation import boolean, choice, integer, number, optional
from rllib_softqmix.docs_gen import ALGORITHMS, COMMAND, PAGE, render, valid_values

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def test_the_configuration_page_is_what_the_generator_writes_now():
    assert PAGE == DOCS / "configuration.md"
    assert PAGE.read_text() == render(), (
        f"docs/configuration.md is out of date with the config classes: run `{COMMAND}` and "
        f"commit the page")


def test_the_configuration_page_lists_every_setting_of_every_algorithm():
    page = PAGE.read_text()
    for name, config_class, _ in ALGORITHMS:
        for key in config_class.SETTINGS:
            assert re.search(rf"^\| `{key}` \|", page, re.MULTILINE), (name, key)


def test_valid_values_read_back_what_each_check_enforces():
    assert valid_values(integer(1)) == "an integer >= 1"
    assert valid_values(integer(1, also=("auto",))) == "an integer >= 1 or 'auto'"
    assert valid_values(number(0.0, 1.0, low_open=True)) == "a number in (0.0, 1.0]"
    assert valid_values(choice(("gru", "mlp"))) == "one of ['gru', 'mlp']"
    assert valid_values(boolean) == "true or false"
    assert valid_values(optional(integer(0))) == "an integer >= 0 or null"
    assert valid_values(lambda owner, key, value: None) == "any value"


def test_the_pages_stand_alone():
    """No page points outside the repository (the algorithms' notes it was written from)."""
    for page in DOCS.rglob("*.md"):
        text = page.read_text()
        assert "../shared" not in text and "ALGORITHMS.md" not in text, page
        assert not re.search(r"\bspec (section )?\d", text), page


def test_mkdocs_builds_the_site_strictly(tmp_path):
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed: pip install -e .[docs]")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
         str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    for page in ("index", "architecture", "configuration", "extending", "performance",
                 "reproductions", "algorithms/qmix", "algorithms/vdn", "algorithms/soft_qmix",
                 "algorithms/gre", "algorithms/maven"):
        built = tmp_path / "site" / ("index.html" if page == "index" else f"{page}/index.html")
        assert built.is_file(), page
