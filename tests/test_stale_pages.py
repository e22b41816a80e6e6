"""No page serves numbers older than the records it reads.

The book caches executed chapters (`execute_notebooks: cache`) and Sphinx re-reads only
changed sources, so a chapter re-runs only when its text changes. Records change without
any text changing (as do the library's profile table and the software versions a page
prints), so every page that reads them says `mystnb: execution_mode: force`, and
the book's extension `book/_ext/fresh_pages.py` has Sphinx re-read those pages on every
build. The first test finds the pages; the second builds a two-page book with the project's
execution settings and extension, adds a record between two builds, and shows that the
forced page follows while the cached one keeps its old output (so the check can tell the
two apart).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.test_book import ROOT, _config, _toc_files

# Code that reads result records, benchmark records or stored runs, or state that changes
# without the page's text changing: the library's profile table, the software it runs on.
READS_RECORDS = re.compile(r"\breport\.(?!load_data\b)\w+|load_records|\banalysis\.|\bA\.gather|"
                           r"figures\.|results/|bench_dir|reliability|run_links|\bPROFILES\b|"
                           r"__version__|\bplatform\.")


def _front_matter(text: str) -> dict:
    return yaml.safe_load(text.split("\n---\n", 1)[0].removeprefix("---\n")) or {}


def _code(text: str) -> str:
    return "\n".join(re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", text, flags=re.S))


def test_every_page_that_reads_records_runs_on_every_build():
    stale = []
    for page in _toc_files():
        path = ROOT / f"{page}.md"
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        if READS_RECORDS.search(_code(text)):
            mode = _front_matter(text).get("mystnb", {}).get("execution_mode")
            if mode != "force":
                stale.append(page)
    assert stale == [], f"pages that read records but may be served from the cache: {stale}"


PAGE = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
{front}---

# {title}

```{{code-cell}} ipython3
import os
from pathlib import Path
print("records:", len(list(Path(os.environ["STALE_TEST_RECORDS"]).glob("*.json"))))
```
"""


@pytest.mark.book
def test_a_new_record_reaches_the_forced_page_on_the_next_incremental_build(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    config = _config()
    config["execute"]["exclude_patterns"] = []
    config["sphinx"] = {"local_extensions": {"fresh_pages": str(ROOT / "book" / "_ext")}}
    (book / "_config.yml").write_text(yaml.safe_dump(config))
    (book / "_toc.yml").write_text("format: jb-book\nroot: forced\nchapters:\n  - file: cached\n")
    force = "mystnb:\n  execution_mode: force\n"
    (book / "forced.md").write_text(PAGE.format(front=force, title="Forced"))
    (book / "cached.md").write_text(PAGE.format(front="", title="Cached"))
    records = tmp_path / "records"
    records.mkdir()
    env = {**os.environ, "STALE_TEST_RECORDS": str(records)}
    jupyter_book = shutil.which("jupyter-book", path=str(Path(sys.executable).parent))

    def build() -> dict[str, str]:
        done = subprocess.run([jupyter_book, "build", str(book)], env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return {name: re.search(r"records: (\d+)", (book / "_build/html" / f"{name}.html")
                                .read_text()).group(1) for name in ("forced", "cached")}

    assert build() == {"forced": "0", "cached": "0"}
    (records / "london.json").write_text("{}")
    assert build() == {"forced": "1", "cached": "0"}  # the cached page is stale, the forced one is not
