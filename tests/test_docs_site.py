"""The docs site (mkdocs.yml, docs/) builds with `mkdocs build --strict`, and the README stays short
and points at its reference pages."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
# Nav pages that are not reference pages: the home page repeats the README; the measurements
# (results, benchmarks, baselines) are linked from the README too, but are not required there.
NOT_REFERENCE = {"index.md", "results.md", "benchmarks.md", "baselines_reproduced.md"}
README_MAX_LINES = 120


def _nav_pages() -> list[str]:
    """The Markdown files of mkdocs.yml's nav, in order (docs-relative paths)."""
    config = yaml.safe_load((REPO_ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    pages: list[str] = []

    def walk(entry):
        if isinstance(entry, str):
            pages.append(entry)
        elif isinstance(entry, dict):
            for value in entry.values():
                walk(value)
        elif isinstance(entry, list):
            for item in entry:
                walk(item)

    walk(config["nav"])
    return pages


def test_the_site_builds_strictly_with_every_nav_page(tmp_path):
    pytest.importorskip("mkdocs")
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (site / "index.html").is_file()
    pages = _nav_pages()
    assert "index.md" in pages and len(pages) >= 10
    for page in pages:
        built = site / ("index.html" if page == "index.md" else f"{page[:-3]}/index.html")
        assert built.is_file(), page


def test_the_readme_is_short_and_links_every_reference_page():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < README_MAX_LINES
    links = set(re.findall(r"\]\(docs/([^)#]+)", readme))
    reference = [page for page in _nav_pages() if page not in NOT_REFERENCE]
    assert reference and [page for page in reference if page not in links] == []
    # CI reads the test command from the README.
    assert 'python -m pip install -e ".[test]" && python -m pytest' in readme
