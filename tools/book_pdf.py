"""`make pdf`: the whole book as one PDF, built offline.

Readers print the book or hand it in as a report. Jupyter Book's single-page HTML build
holds every page of the table of contents in one document, with the figures as local files
and the math typeset by the bundled MathJax (no CDN); headless Chromium prints that page.
It runs the page under a virtual-time budget, so MathJax has finished typesetting before
the page is printed. The build shares the execution cache with `make book`: chapters that
`make book` executed are not executed again.

    python -m tools.book_pdf                 # build, then print to _build/pdf/book.pdf
    python -m tools.book_pdf --no-build      # print the existing single-page build again
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Virtual milliseconds Chromium lets the page run before printing: MathJax typesets every
# formula of the single page well within it (virtual time passes only while the page idles).
VIRTUAL_TIME_BUDGET_MS = 30_000
# Headless Chromium without a sandbox, a GPU or any network traffic of its own (the browser
# tests use the same flags).
HEADLESS_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CHROMIUM_FLAGS = [*HEADLESS_FLAGS, f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}",
                  "--no-pdf-header-footer"]
BUILD_TIMEOUT_S = 1800
PRINT_TIMEOUT_S = 600


class PdfError(RuntimeError):
    """The PDF could not be made; the message says which step failed and why."""


def find_chromium() -> str:
    """The Chromium binary: `$CHROMIUM`, else the usual names on PATH."""
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    raise PdfError("headless Chromium prints the PDF and was not found (tried $CHROMIUM, chromium, "
                   "chromium-browser, google-chrome); install it with `sudo apt-get install -y "
                   "chromium` (`make test` does so when it may) or set CHROMIUM to the binary")


def _jupyter_book() -> str:
    beside_python = Path(sys.executable).with_name("jupyter-book")
    found = str(beside_python) if beside_python.exists() else shutil.which("jupyter-book")
    if not found:
        raise PdfError(f"jupyter-book is neither next to {sys.executable} nor on PATH; run `make setup`")
    return found


def build_single_page(path_output: Path, log: Path | None = None) -> Path:
    """Build the book as one HTML page (warnings are errors, as in `make book`); its path."""
    command = [_jupyter_book(), "build", str(ROOT), "--builder", "singlehtml", "--keep-going", "-W",
               "-n", "--path-output", str(path_output)]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=BUILD_TIMEOUT_S)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(done.stdout, encoding="utf-8")
    if done.returncode != 0:
        raise PdfError(f"the single-page build failed (exit {done.returncode}):\n{done.stdout[-4000:]}")
    return single_page(path_output)


def single_page(path_output: Path) -> Path:
    """The single-page book, ready to print: `_build/singlehtml/book.html`.

    The builder names the page after the root of `_toc.yml` (`book/intro.html`; `index.html`
    only redirects there), yet writes every stylesheet, script and image path in it as if it
    lay at the top of the build. A copy at the top is the page with all of them in place.
    """
    import yaml

    html = path_output / "_build" / "singlehtml"
    root = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))["root"]
    built = html / f"{root}.html"
    if not built.is_file():
        raise PdfError(f"{built} does not exist; build it first (without --no-build)")
    page = html / "book.html"
    shutil.copyfile(built, page)
    return page


def print_to_pdf(page: Path, pdf: Path, chromium: str | None = None) -> Path:
    """Print an HTML page to `pdf` with headless Chromium, written atomically."""
    chromium = chromium or find_chromium()
    pdf.parent.mkdir(parents=True, exist_ok=True)
    partial = pdf.with_name(pdf.name + ".partial")
    partial.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                   f"--print-to-pdf={partial}", page.resolve().as_uri()]
        done = subprocess.run(command, capture_output=True, text=True, timeout=PRINT_TIMEOUT_S)
    if not partial.is_file() or partial.stat().st_size == 0:
        raise PdfError(f"Chromium wrote no PDF (exit {done.returncode}): {done.stderr[-2000:]}")
    os.replace(partial, pdf)
    return pdf


def make_pdf(path_output: Path = ROOT, pdf: Path | None = None, build: bool = True) -> Path:
    """Build the single page under `path_output` (unless `build` is False), then print it."""
    pdf = pdf or path_output / "_build" / "pdf" / "book.pdf"
    chromium = find_chromium()  # fail before a build of minutes, not after
    page = (build_single_page(path_output, log=path_output / "_build" / "pdf" / "build.log")
            if build else single_page(path_output))
    return print_to_pdf(page, pdf, chromium)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.book_pdf", description=__doc__.split("\n")[0])
    parser.add_argument("--path-output", type=Path, default=ROOT,
                        help="the folder whose _build/ receives the build (default: the repository)")
    parser.add_argument("--output", type=Path, default=None,
                        help="the PDF (default: PATH_OUTPUT/_build/pdf/book.pdf)")
    parser.add_argument("--no-build", action="store_true", help="print the existing single-page build")
    args = parser.parse_args(argv)
    try:
        pdf = make_pdf(args.path_output.resolve(), args.output, build=not args.no_build)
    except (PdfError, subprocess.TimeoutExpired) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {pdf} ({pdf.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
