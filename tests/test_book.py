"""Build the book once and check the HTML that a reader gets.

The build runs the same command as `make book` (`jupyter-book build . --keep-going -W -n`),
so any warning or any failing cell (every verification in a chapter is an `assert`) fails
it. By default it builds into `test-artifacts/book/` from scratch, with an empty execution
cache, so every chapter is re-executed against the current `lib`; set
`BOOK_TEST_OUTPUT=.` to build into `_build/` and reuse its cache instead (faster, but a
change in `lib` alone does not re-execute cached chapters).

Then, on the built HTML:
  * headless Chromium renders the landing page and every attention chapter: all math is
    typeset by the bundled MathJax, no raw TeX is left in the visible text, and no
    script comes from a CDN;
  * every <img> in every page points to an existing, non-empty image;
  * no internal link is broken (our own check, then `linkchecker` offline);
  * screenshots of the landing page and one derivation page go to `test-artifacts/`;
  * no table of a page reaches past its text column or runs its cells together;
  * `make pdf`'s single-page build, reusing this build's execution cache, prints to a PDF
    (`test-artifacts/book.pdf`) that holds every page's title, rendered math and figures.

A missing Chromium or pdftotext FAILS these checks (`make test` installs them); it never
skips them.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html import unescape
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from tests.conftest import REPO as ROOT
from tools.book_pdf import HEADLESS_FLAGS

ARTIFACTS = ROOT / "test-artifacts"
BUILD_TIMEOUT_S = 1800
BROWSER_TIMEOUT_S = 120
CHROMIUM_FLAGS = [*HEADLESS_FLAGS, "--virtual-time-budget=5000"]
# The derivation page whose screenshot is kept beside the landing page's.
SCREENSHOT_CHAPTER = "book/attention/kqv_self_attention"


# --------------------------------------------------------------------------------------
# Configuration (no build needed)
# --------------------------------------------------------------------------------------
def _config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())


def _toc_files() -> list[str]:
    """Every `file:` entry of _toc.yml (root included), without suffix."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc.get("parts", []))
    return files


def test_config_executes_and_fails_loudly():
    cfg = _config()
    assert cfg["only_build_toc_files"] is True
    assert cfg["execute"]["execute_notebooks"] == "cache"
    assert cfg["execute"]["raise_on_error"] is True
    assert "sphinx-mathjax-offline" in cfg["sphinx"]["extra_extensions"]
    for pattern in [".venv", "_build", "notebooks", "tests", "README.md"]:
        assert pattern in cfg["exclude_patterns"], pattern


@pytest.mark.parametrize(
    "notebook", ["book/runs/x.ipynb", "book/runs/smoke/x.ipynb", "book/runs/full/a/x.ipynb"]
)
def test_stored_runs_are_never_executed(notebook):
    # myst-nb matches execution excludes with PurePosixPath(<absolute path>).match(pattern).
    patterns = _config()["execute"]["exclude_patterns"]
    path = PurePosixPath((ROOT / notebook).as_posix())
    assert any(path.match(p) for p in patterns), f"{notebook} would be executed"
    chapter = PurePosixPath((ROOT / "book/attention/copying.md").as_posix())
    assert not any(chapter.match(p) for p in patterns)


def test_toc_root_and_first_part():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    assert toc["format"] == "jb-book"
    assert toc["root"] == "book/intro"
    assert toc["parts"][0]["caption"] == "Answers"  # the grader's page, right after the introduction
    assert toc["parts"][0]["chapters"] == [{"file": "book/answers"}]
    assert toc["parts"][1]["caption"] == "Attention, derived and checked"
    for name in _toc_files():
        assert (ROOT / f"{name}.md").exists() or (ROOT / f"{name}.ipynb").exists(), name


# --------------------------------------------------------------------------------------
# The build
# --------------------------------------------------------------------------------------
@dataclass
class Build:
    """Outcome of the one book build shared by the tests of this module."""

    returncode: int
    log: str = field(repr=False)
    html: Path
    seconds: float


def _jupyter_book() -> list[str]:
    script = Path(sys.executable).with_name("jupyter-book")
    if script.exists():
        return [str(script)]
    found = shutil.which("jupyter-book")
    if found:
        return [found]
    pytest.fail(
        f"jupyter-book is neither next to {sys.executable} nor on PATH; run `make setup`."
    )


@pytest.fixture(scope="module")
def build() -> Build:
    requested = os.environ.get("BOOK_TEST_OUTPUT")
    if requested:
        path_output = (ROOT / requested).resolve()
    else:
        path_output = ARTIFACTS / "book"
        shutil.rmtree(path_output, ignore_errors=True)  # fresh cache: execute everything
    path_output.mkdir(parents=True, exist_ok=True)
    cmd = [*_jupyter_book(), "build", ".", "--keep-going", "-W", "-n",
           "--path-output", str(path_output)]
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=BUILD_TIMEOUT_S)
    seconds = time.monotonic() - start
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "book-build.log").write_text(proc.stdout)
    return Build(proc.returncode, proc.stdout, path_output / "_build" / "html", seconds)


def _html(build: Build) -> Path:
    if build.returncode != 0:
        pytest.fail("the book build failed; see test_book_builds or test-artifacts/book-build.log")
    return build.html


def _log_excerpt(log: str, lines: int = 120) -> str:
    # Keep the lines that explain a failure: warnings, errors and the traceback tail.
    text = re.sub(r"\x1b\[[0-9;]*m", "", log).splitlines()
    flagged = [ln for ln in text if re.search(r"WARNING|ERROR|Error|assert", ln)]
    return "\n".join(flagged[-40:] + ["--- last lines ---"] + text[-lines:])


@pytest.mark.book
def test_book_builds(build: Build):
    print(f"book build took {build.seconds:.0f} s")
    if build.returncode != 0:
        pytest.fail(
            f"`jupyter-book build . --keep-going -W -n` exited with {build.returncode} "
            f"(full log: test-artifacts/book-build.log)\n{_log_excerpt(build.log)}"
        )
    assert (build.html / "index.html").exists()
    for name in _toc_files():
        assert (build.html / f"{name}.html").exists(), f"{name} was not built"


# --------------------------------------------------------------------------------------
# HTML parsing helpers
# --------------------------------------------------------------------------------------
class _Refs(HTMLParser):
    """Collects ids, references (tag, attribute, value) and math elements of a page."""

    REF_ATTRS = {"a": "href", "link": "href", "script": "src", "img": "src", "source": "src",
                 "iframe": "src"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.refs: list[tuple[str, str]] = []
        self.images: list[str] = []
        self.math = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("id", "name"):
            if a.get(key):
                self.ids.add(a[key])
        attr = self.REF_ATTRS.get(tag)
        if attr and a.get(attr) is not None:
            self.refs.append((tag, a[attr]))
        if tag == "img":
            self.images.append(a.get("src") or "")
        classes = (a.get("class") or "").split()
        if "math" in classes and "notranslate" in classes:
            self.math += 1


def _parse(path: Path) -> _Refs:
    p = _Refs()
    p.feed(path.read_text(encoding="utf-8"))
    return p


class _VisibleText(HTMLParser):
    """Text a reader sees, minus code, scripts, styles and MathJax output."""

    SKIP = {"script", "style", "pre", "code", "textarea", "noscript", "svg", "template",
            "mjx-container", "title", "kbd"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0
        self.parts: list[str] = []
        self.mathjax = 0
        self.errors = 0
        self.scripts: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "mjx-container":
            self.mathjax += 1
        if tag == "mjx-merror" or "data-mjx-error" in a:
            self.errors += 1
        if tag == "script" and a.get("src"):
            self.scripts.append(a["src"])
        if tag in self.SKIP:
            self.depth += 1

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.depth > 0:
            self.depth -= 1

    def handle_data(self, data):
        if self.depth == 0:
            self.parts.append(data)

    @property
    def text(self) -> str:
        return " ".join(self.parts)


RAW_TEX = re.compile(r"\$\$|\\\(|\\\)|\\\[|\\\]|\\begin\{|\\[A-Za-z]{2,}")


def _is_remote(url: str) -> bool:
    return url.startswith("//") or urlsplit(url).scheme in {"http", "https", "ftp"}


def _pages(html: Path) -> list[Path]:
    return sorted(p for p in html.rglob("*.html") if "_static" not in p.relative_to(html).parts)


def _browser_pages(html: Path) -> list[Path]:
    chapters = [f for f in _toc_files() if f.startswith("book/attention/")]
    assert chapters, "no attention chapters in _toc.yml"
    return [html / "book" / "intro.html"] + [html / f"{c}.html" for c in chapters]


# --------------------------------------------------------------------------------------
# Browser checks
# --------------------------------------------------------------------------------------
def _chromium() -> str:
    candidates = [os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"]
    for name in candidates:
        if name and shutil.which(name):
            return shutil.which(name)
    pytest.fail(
        "headless Chromium is required for the browser checks of the book and was not found "
        "(tried $CHROMIUM, chromium, chromium-browser, google-chrome). Install it with "
        "`apt-get install -y chromium` (.ci/run does this) or set CHROMIUM to the binary."
    )


def _run_chromium(binary: str, url: str, extra: list[str]) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S)


@pytest.mark.book
def test_math_renders_in_a_browser(build: Build):
    html = _html(build)
    binary = _chromium()
    pages = _browser_pages(html)

    def dump(page: Path) -> tuple[Path, subprocess.CompletedProcess]:
        return page, _run_chromium(binary, page.as_uri(), ["--dump-dom"])

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(dump, pages))

    problems = []
    for page, proc in results:
        name = page.relative_to(html).as_posix()
        if proc.returncode != 0 or "<html" not in proc.stdout:
            problems.append(f"{name}: chromium failed ({proc.returncode}): {proc.stderr[-500:]}")
            continue
        static = _parse(page)
        dom = _VisibleText()
        dom.feed(proc.stdout)
        if static.math and dom.mathjax < static.math:
            problems.append(f"{name}: {static.math} math elements but only {dom.mathjax} "
                            f"typeset by MathJax")
        if dom.errors:
            problems.append(f"{name}: {dom.errors} MathJax error(s) (bad TeX)")
        for match in RAW_TEX.finditer(dom.text):
            context = dom.text[max(0, match.start() - 40): match.end() + 40]
            problems.append(f"{name}: raw TeX in the visible text: ...{context!r}...")
            break
        remote = [s for s in dom.scripts if _is_remote(s)]
        if remote:
            problems.append(f"{name}: scripts from the network: {remote}")
        if not any("mathjax" in s for s in dom.scripts):
            problems.append(f"{name}: no local MathJax script")
        if name.startswith("book/attention/") and dom.mathjax == 0:
            problems.append(f"{name}: a derivation page without any math")
    assert not problems, "\n".join(problems)


@pytest.mark.book
def test_screenshots(build: Build):
    html = _html(build)
    binary = _chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    shots = {"landing.png": html / "book" / "intro.html",
             f"{PurePosixPath(SCREENSHOT_CHAPTER).name}.png": html / f"{SCREENSHOT_CHAPTER}.html"}
    # Every page of parts 2-4 and the answers page, kept for a reader's look after each build.
    for page in _toc_files():
        if page.startswith(("book/knowledge/", "book/variants/", "book/considerations/")) \
                or page == "book/answers":
            shots[f"pages/{page.removeprefix('book/').replace('/', '_')}.png"] = html / f"{page}.html"
    (ARTIFACTS / "pages").mkdir(exist_ok=True)

    def shoot(item: tuple[str, Path]) -> tuple[str, Path, str]:
        filename, page = item
        target = ARTIFACTS / filename
        target.unlink(missing_ok=True)
        proc = _run_chromium(binary, page.as_uri(),
                             [f"--screenshot={target}", "--window-size=1280,1600"])
        return filename, target, proc.stderr[-500:]

    with ThreadPoolExecutor(max_workers=2) as pool:
        taken = list(pool.map(shoot, shots.items()))
    for filename, target, stderr in taken:
        assert target.exists(), f"no screenshot {filename}: {stderr}"
        width, height = _png_size(target)
        assert (width, height) == (1280, 1600), (filename, width, height)
        assert target.stat().st_size > 20_000, f"{filename} looks blank"
    assert len(taken) >= 14, sorted(shots)


# Appended to a copy of a page: where each visible table of the article ends, and where the
# article's text column ends, as Chromium lays the page out (a table wider than the column
# overflows it, and a reader has to scroll sideways to read it), and the room its first cell
# leaves around its text.
TABLE_WIDTHS_SCRIPT = """<script>
(() => {
  const article = document.querySelector("article.bd-article");
  const limit = article ? Math.round(article.getBoundingClientRect().right) : -1;
  const found = [];
  document.querySelectorAll("article table").forEach((table, index) => {
    const box = table.getBoundingClientRect();
    const cell = table.querySelector("td");
    const padding = cell ? parseFloat(getComputedStyle(cell).paddingLeft) : -1;
    if (box.width > 0) found.push([index, Math.round(box.right), limit, padding]);
  });
  const out = document.createElement("pre");
  out.id = "table-widths";
  out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
})();
</script>"""
MIN_CELL_PADDING_PX = 4  # browsers' default is 1 px: neighbouring columns' text runs together
WIDTHS = re.compile(r'<pre id="table-widths"[^>]*>([^<]*)</pre>')


def _table_overflows(binary: str, page: Path) -> list[str]:
    """The tables of `page` that reach past its text column at a 1280-px window, or whose
    cells touch."""
    source = page.read_text(encoding="utf-8")
    head, tag, tail = source.rpartition("</body>")
    copy = page.with_name(f"_table-widths-{page.name}")  # beside it: its assets resolve
    copy.write_text(head + TABLE_WIDTHS_SCRIPT + tag + tail, encoding="utf-8")
    try:
        proc = _run_chromium(binary, copy.as_uri(), ["--dump-dom", "--window-size=1280,1600"])
    finally:
        copy.unlink()
    match = WIDTHS.search(proc.stdout)
    if not match:
        return [f"not measured (chromium exit {proc.returncode}): {proc.stderr[-300:]}"]
    problems = []
    for index, right, limit, padding in json.loads(unescape(match.group(1))):
        if limit < 0 or right > limit + 1:
            problems.append(f"table {index} ends at {right} px, the text column at {limit} px")
        if 0 <= padding < MIN_CELL_PADDING_PX:
            problems.append(f"table {index}: {padding:g} px between a cell's edge and its text")
    return problems


def _table_pages(html: Path) -> list[Path]:
    """Every page of the book proper, and the stored runs of the whole-data profiles (their
    tables hold the longest names and completions)."""
    pages = [html / f"{page}.html" for page in _toc_files()]
    for profile in ("cpu", "cpu32", "cpu32-classic", "full"):
        pages += sorted((html / "book" / "runs" / profile).glob("*.html"))
    return [page for page in pages if page.exists()]


@pytest.mark.book
def test_tables_fit_the_page(build: Build):
    html = _html(build)
    binary = _chromium()
    pages = _table_pages(html)
    with ThreadPoolExecutor(max_workers=2) as pool:
        found = list(pool.map(lambda page: (page, _table_overflows(binary, page)), pages))
    problems = [f"{page.relative_to(html).as_posix()}: {line}"
                for page, lines in found for line in lines]
    assert len(pages) > 20, pages
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------------------
# The PDF
# --------------------------------------------------------------------------------------
def _title(name: str) -> str:
    """A page's title as a reader sees it: its first level-1 heading, code marks dropped."""
    source = ROOT / f"{name}.md"
    if source.exists():
        lines = source.read_text(encoding="utf-8").splitlines()
    else:
        cells = json.loads((ROOT / f"{name}.ipynb").read_text(encoding="utf-8"))["cells"]
        lines = [ln for c in cells if c["cell_type"] == "markdown" for ln in "".join(c["source"]).splitlines()]
    heading = next(ln for ln in lines if ln.startswith("# "))
    return heading[2:].replace("`", "").strip()


def _stored_run_pages() -> list[str]:
    return [nb.relative_to(ROOT).with_suffix("").as_posix()
            for nb in sorted((ROOT / "book" / "runs").glob("*/*.ipynb"))]


def _poppler(tool: str) -> str:
    found = shutil.which(tool)
    if not found:
        pytest.fail(f"{tool} (poppler-utils) reads the PDF and was not found; install it with "
                    "`apt-get install -y poppler-utils` (`make test` does so when it may).")
    return found


# Math that MathJax did not typeset keeps its delimiters (Sphinx writes \( \) and \[ \]).
RAW_TEX_IN_PDF = re.compile(r"\$\$|\\\(|\\\)|\\\[|\\\]|\\begin\{|\\(?:frac|sum|mathbf|mathsf|mathbb|"
                            r"alpha|top|sqrt|cdot|approx|varepsilon|lVert|qquad|text)\b")


@pytest.mark.book
@pytest.mark.slow
def test_the_book_prints_as_one_pdf(build: Build):
    """`make pdf` on this build's folder: the single-page build comes from the execution cache
    the HTML build filled, so this costs one more Sphinx pass and one print."""
    from tools.book_pdf import make_pdf

    _html(build)
    _chromium()
    pdftotext, pdfimages = _poppler("pdftotext"), _poppler("pdfimages")
    path_output = build.html.parent.parent
    pdf = make_pdf(path_output, ARTIFACTS / "book.pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-"
    text = subprocess.run([pdftotext, str(pdf), "-"], capture_output=True, text=True, check=True,
                          timeout=300).stdout
    flat = " ".join(text.split())
    pages = _toc_files() + _stored_run_pages()
    # pdftotext joins a word hyphenated at a line end ("mini-" + "classic" -> "miniclassic"),
    # so titles are compared without hyphens and spaces.
    squashed = re.sub(r"[\s-]+", "", text)
    missing = [f"{name}: {_title(name)!r}" for name in pages
               if re.sub(r"[\s-]+", "", _title(name)) not in squashed]
    assert not missing, "titles missing from the PDF:\n" + "\n".join(missing)
    raw = [flat[max(0, m.start() - 40): m.end() + 40] for m in RAW_TEX_IN_PDF.finditer(flat)]
    assert not raw, f"raw TeX in the PDF (MathJax did not typeset it): {raw[:5]}"
    assert "Δ" in flat and "∑" in flat, "the derivations' symbols are missing: was the math typeset?"
    figures = set(re.findall(r'src="(_images/[^"]+)"',
                             (path_output / "_build" / "singlehtml" / "book.html").read_text(encoding="utf-8")))
    listed = subprocess.run([pdfimages, "-list", str(pdf)], capture_output=True, text=True, check=True,
                            timeout=300).stdout.splitlines()[2:]
    assert len(figures) >= 20 and len(listed) >= len(figures), (len(listed), len(figures))


# --------------------------------------------------------------------------------------
# Images and links
# --------------------------------------------------------------------------------------
def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def _resolve(page: Path, url: str) -> Path:
    path = unquote(urlsplit(url).path)
    target = (page.parent / path).resolve() if path else page
    if target.is_dir():
        target = target / "index.html"
    return target


@pytest.mark.book
def test_every_image_exists_and_is_not_empty(build: Build):
    html = _html(build)
    problems = []
    for page in _pages(html):
        name = page.relative_to(html).as_posix()
        for src in _parse(page).images:
            if src.startswith("data:"):
                payload = src.split(",", 1)[-1]
                if not payload or (";base64" in src[:64] and not base64.b64decode(payload)):
                    problems.append(f"{name}: empty inline image")
                continue
            if not src or _is_remote(src):
                problems.append(f"{name}: image {src!r} is empty or remote")
                continue
            target = _resolve(page, src)
            if not target.is_file() or target.stat().st_size == 0:
                problems.append(f"{name}: image {src!r} is missing or empty")
            elif target.suffix == ".png" and min(_png_size(target)) <= 0:
                problems.append(f"{name}: image {src!r} has zero size")
    for chapter in [f for f in _toc_files() if f.startswith("book/attention/")]:
        images = [s for s in _parse(html / f"{chapter}.html").images if "_images/" in s]
        if not images:
            problems.append(f"{chapter}: no figure")
    assert not problems, "\n".join(problems)


@pytest.mark.book
def test_no_broken_internal_links(build: Build):
    html = _html(build)
    parsed = {page: _parse(page) for page in _pages(html)}
    problems = []
    for page, p in parsed.items():
        name = page.relative_to(html).as_posix()
        for tag, url in p.refs:
            scheme = urlsplit(url).scheme
            if scheme in {"mailto", "javascript", "data"}:
                continue
            if _is_remote(url):
                if tag != "a":  # scripts, styles, images must be local
                    problems.append(f"{name}: <{tag}> loads {url} from the network")
                continue
            target = _resolve(page, url)
            if not target.exists():
                problems.append(f"{name}: <{tag}> {url!r} -> missing {target}")
                continue
            fragment = urlsplit(url).fragment
            if tag == "a" and fragment and target.suffix == ".html":
                ids = parsed[target].ids if target in parsed else _parse(target).ids
                if unquote(fragment) not in ids:
                    problems.append(f"{name}: link {url!r}: no id {fragment!r} in {target.name}")
    assert not problems, "\n".join(problems[:50])


# Characters of monospace text that the text column shows in a 1280-pixel window (measured
# in Chromium: the 80th touches the edge of an output box or a code cell, so 79 leave a
# margin); a longer line is cut off on screen and has to be scrolled.
PRINTED_LINE_LIMIT = 79
PRINTED_OUTPUT = re.compile(
    r'<div class="output (?:stream|text_plain)[^"]*"><div class="highlight"><pre>(.*?)</pre>', re.S)


CODE_CELL = re.compile(r"```\{code-cell\}[^\n]*\n(.*?)\n```", re.S)


def _visible_code(cell: str) -> list[str]:
    """A code cell's source lines as the page shows them: none when its options (leading
    `:key:` lines or a `---` block) hide or remove the input."""
    lines = cell.splitlines()
    if lines and lines[0].strip() == "---":
        end = lines.index("---", 1)
        options, code = lines[: end + 1], lines[end + 1:]
    else:
        n = next((i for i, line in enumerate(lines) if not line.startswith(":")), len(lines))
        options, code = lines[:n], lines[n:]
    hidden = re.search(r"hide-input|remove-input|hide-cell|remove-cell", " ".join(options))
    return [] if hidden else code


def test_visible_code_fits_the_page():
    """Code a chapter shows (not hidden behind "Show code cell source") fits the text column,
    as printed output does."""
    long = []
    for page in sorted((ROOT / "book").rglob("*.md")):
        if "runs" in page.relative_to(ROOT / "book").parts:
            continue
        for cell in CODE_CELL.findall(page.read_text(encoding="utf-8")):
            long += [f"{page.relative_to(ROOT)}: {len(line)} characters: {line[:70]}"
                     for line in _visible_code(cell) if len(line) > PRINTED_LINE_LIMIT]
    assert not long, "shown code lines wider than the page:\n" + "\n".join(long)


FENCE = re.compile(r"^([ \t]*)(`{3,}|~{3,})(.*)$")
INLINE_CODE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
LONGEST_INLINE_TOKEN = 60  # a longer unbroken run of code cannot wrap and leaves the column


def _literal_blocks(text: str) -> list[tuple[str, list[str]]]:
    """Each fenced block of plain text or shell (not a code cell or another directive):
    its fence's indent and its lines."""
    blocks, open_fence = [], None
    for line in text.splitlines():
        fence = FENCE.match(line)
        if open_fence is None:
            if fence:
                indent, marks, info = fence.groups()
                open_fence = (indent, marks, not info.strip().startswith("{"), [])
        elif fence and fence.group(2) == open_fence[1] and not fence.group(3).strip():
            if open_fence[2]:
                blocks.append((open_fence[0], open_fence[3]))
            open_fence = None
        else:
            open_fence[3].append(line)
    return blocks


def test_literal_commands_fit_the_page():
    """Commands a page prints in a fenced block fit its text column (less the indent of a
    list item around them), and inline code has no unbroken run too long to wrap."""
    long = []
    for page in sorted((ROOT / "book").rglob("*.md")):
        if "runs" in page.relative_to(ROOT / "book").parts:
            continue
        text = page.read_text(encoding="utf-8")
        for indent, lines in _literal_blocks(text):
            limit = PRINTED_LINE_LIMIT - len(indent)
            long += [f"{page.relative_to(ROOT)}: {len(line) - len(indent)} characters: "
                     f"{line.strip()[:60]}"
                     for line in lines if len(line) - len(indent) > limit]
        long += [f"{page.relative_to(ROOT)}: inline `{token[:60]}`"
                 for code in INLINE_CODE.findall(text) for token in code.split()
                 if len(token) > LONGEST_INLINE_TOKEN]
    assert not long, "literal code wider than the page:\n" + "\n".join(long)


INCLUDED_OBJECT = re.compile(r"```\{literalinclude\} ([^\n]+)\n(?::[^\n]*\n)*?:pyobject: (\w+)")


def test_library_code_a_chapter_shows_fits_the_page():
    """Functions and classes of `lib` that a chapter shows with `literalinclude` fit the text
    column, as the chapters' own code does (the package is otherwise written to ruff's
    width)."""
    import ast

    long, shown = [], 0
    for page in sorted((ROOT / "book").rglob("*.md")):
        for relative, name in INCLUDED_OBJECT.findall(page.read_text(encoding="utf-8")):
            source = (page.parent / relative.strip()).resolve()
            text = source.read_text(encoding="utf-8")
            node = next(n for n in ast.walk(ast.parse(text))
                        if isinstance(n, ast.FunctionDef | ast.ClassDef) and n.name == name)
            first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            shown += 1
            long += [f"{source.relative_to(ROOT)}:{first + i} ({name}): {len(line)} characters"
                     for i, line in enumerate(text.splitlines()[first - 1:node.end_lineno])
                     if len(line) > PRINTED_LINE_LIMIT]
    assert shown >= 11, "the chapters should show the model's and the variants' code"
    assert not long, "included library lines wider than the page:\n" + "\n".join(long)


@pytest.mark.book
def test_printed_output_fits_the_page(build: Build):
    """Chapters break their printed lines to the text column. The stored run notebooks
    (book/runs) are not checked: those that trained their run keep their output as it ran,
    progress bars included (the templates under notebooks/ wrap what they print)."""
    html = _html(build)
    long = []
    for page in _pages(html):
        name = page.relative_to(html).as_posix()
        if name.startswith("book/runs/"):
            continue
        for block in PRINTED_OUTPUT.findall(page.read_text(encoding="utf-8")):
            text = unescape(re.sub(r"<[^>]+>", "", block))
            long += [f"{name}: {len(line)} characters: {line[:70]}"
                     for line in text.splitlines() if len(line) > PRINTED_LINE_LIMIT]
    assert not long, "printed lines wider than the page:\n" + "\n".join(long)


# A table cell as pandas prints a float it was not told how to format: six decimals.
UNFORMATTED_FLOAT = re.compile(r"<td[^>]*>\s*(-?\d+\.\d{6})\s*</td>")


@pytest.mark.book
def test_table_numbers_carry_the_digits_that_mean_something(build: Build):
    """Every table formats its floats ("185.7 steps/s", "0.0e+00"), never pandas' default
    six decimals ("185.700000"), which claim a precision no measurement here has."""
    html = _html(build)
    found = [f"{page.relative_to(html).as_posix()}: {match}"
             for page in _pages(html)
             for match in sorted(set(UNFORMATTED_FLOAT.findall(page.read_text(encoding="utf-8"))))[:3]]
    assert not found, "table cells with six unformatted decimals:\n" + "\n".join(found)


@pytest.mark.book
def test_linkchecker_offline(build: Build):
    html = _html(build)
    linkchecker = Path(sys.executable).with_name("linkchecker")
    if not linkchecker.exists():
        pytest.fail(f"linkchecker not found next to {sys.executable}; run `make setup`")
    with tempfile.TemporaryDirectory(prefix="book-html-") as tmp:
        root = html
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            # linkchecker drops root privileges to `nobody`, who may not be able to read
            # the build folder: check a world-readable copy instead.
            os.chmod(tmp, 0o755)
            root = Path(tmp) / "html"
            shutil.copytree(html, root)
            for dirpath, dirnames, filenames in os.walk(root):
                for d in dirnames:
                    os.chmod(Path(dirpath) / d, 0o755)
                for f in filenames:
                    os.chmod(Path(dirpath) / f, 0o644)
        proc = subprocess.run(
            [str(linkchecker), "--no-warnings", "--no-status", (root / "index.html").as_uri()],
            capture_output=True, text=True, timeout=600,
        )
    assert proc.returncode == 0, f"linkchecker found problems:\n{proc.stdout[-4000:]}"
    assert "0 errors found" in proc.stdout, proc.stdout[-2000:]


@pytest.mark.book
def test_stored_runs_are_rendered_not_executed(build: Build):
    """Every stored papermill notebook is a page of the book, shown with its outputs and
    never executed by the build (the build log names every notebook it executes)."""
    html = _html(build)
    stored = sorted((ROOT / "book" / "runs").glob("*/*.ipynb"))
    assert stored, "no stored run notebooks under book/runs/"
    problems = []
    for nb in stored:
        rel = nb.relative_to(ROOT).with_suffix("").as_posix()
        if f"{nb}: Executing" in build.log:
            problems.append(f"{rel}: executed by the build")
        page = html / f"{rel}.html"
        if not page.exists():
            problems.append(f"{rel}: no page (is it in _toc.yml?)")
        elif nb.stem != "london" and not any("_images/" in s for s in _parse(page).images):
            problems.append(f"{rel}: its stored plots are missing from the page")
    assert not problems, "\n".join(problems)


@pytest.mark.book
def test_the_essay_states_the_window_count_once(build: Build):
    """Why pretraining helps states how many dev places lie inside the window for the whole
    data; only a mini world restates the count for its own people (once was a repetition)."""
    from lib.report.choice import essay_profile
    from lib.report.reading import is_whole_data

    page = _html(build) / "book" / "considerations" / "why_pretraining_helps.html"
    dom = _VisibleText()
    dom.feed(page.read_text(encoding="utf-8"))
    text = " ".join(dom.text.split())
    assert text.count("have their place written inside the window") == 1
    restated = "In the world of this page" in text
    assert restated != is_whole_data(essay_profile()), text[text.find("In the whole data"):][:600]
