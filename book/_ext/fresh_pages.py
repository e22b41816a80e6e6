"""Sphinx extension: pages that read result records are rebuilt on every build.

Sphinx re-reads only source files that changed since the last build, and the execution
cache re-runs only notebooks whose code changed. A page that reads `results/` changes
neither when a new record arrives, so an incremental build would keep serving its old
numbers. Such pages say so with `mystnb: execution_mode: force` in their front matter;
this extension reports them as outdated on every build, so Sphinx re-reads them and
MyST-NB, told to force, executes them again.
"""

from __future__ import annotations

from pathlib import Path

import yaml

# Pages declare themselves: the marker is MyST-NB's own per-page setting.
MARKER = "execution_mode"


def forced(path: Path) -> bool:
    """Whether a MyST Markdown page asks to be executed on every build."""
    if path.suffix != ".md" or not path.is_file():
        return False
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n") or "\n---\n" not in text[4:]:
        return False
    front = yaml.safe_load(text[4:].split("\n---\n", 1)[0]) or {}
    return (front.get("mystnb") or {}).get(MARKER) == "force"


def outdated(app, env, added, changed, removed) -> list[str]:
    return sorted(doc for doc in env.found_docs
                  if doc not in added and doc not in changed and forced(Path(env.doc2path(doc))))


def setup(app):
    app.connect("env-get-outdated", outdated)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
