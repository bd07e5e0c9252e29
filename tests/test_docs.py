"""The README is a front door and the docs hold together: the README stays short, keeps the two
commands, links every page of docs/, and no relative link in README.md or docs/*.md points at a
file or a heading that is not there."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
MAX_README_LINES = 200
# The two commands for a fresh machine, as the README gives them (and the Makefile runs them).
COMMANDS = (
    "make run     # set everything up and serve http://127.0.0.1:8000 with the bundled default model",
    "make test    # set everything up and run the test suite (unit, route and headless-Chromium tests)",
)

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`]*`")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)


def _prose(text: str) -> str:
    """The text without fenced code blocks (a link or a heading in code is neither)."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: markup dropped, lower case, punctuation dropped,
    spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)      # a link: its text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a page (a repeated heading gets -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(_prose(page.read_text())):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(page: Path) -> list[str]:
    """The link targets of a page's prose (inline code and code blocks left out)."""
    return LINK.findall(INLINE_CODE.sub("", _prose(page.read_text())))


def relative_links(page: Path) -> list[str]:
    return [t for t in links(page) if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.I)]


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def broken(page: Path) -> list[str]:
    """The relative links of `page` whose file, or whose heading, is missing."""
    bad = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            bad.append(f"{target}: no file {_shown(file)}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            bad.append(f"{target}: no heading #{anchor} in {_shown(file)}")
    return bad


def test_the_readme_is_a_front_door_of_at_most_200_lines():
    lines = README.read_text().count("\n")
    assert lines <= MAX_README_LINES, (
        f"README.md has {lines} lines (at most {MAX_README_LINES}): move detail to a page of docs/")


def test_the_readme_gives_the_two_commands_the_makefile_runs():
    text = README.read_text()
    for command in COMMANDS:
        assert command in text, f"README.md lost the command line {command!r}"
    targets = re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M)
    assert {"run", "test"} <= set(targets)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_at_files_and_headings_that_exist(page):
    assert broken(page) == []


def test_the_readme_links_every_page_of_docs():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in relative_links(README)}
    assert [d.name for d in DOCS if d.resolve() not in linked] == []


def test_the_readme_screenshot_is_a_small_png_in_docs_img():
    images = [t for t in relative_links(README) if t.endswith(".png")]
    assert images, "the README shows the running app (docs/img/*.png)"
    for image in images:
        path = ROOT / image
        assert path.parent == ROOT / "docs" / "img"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size < 300_000


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_every_page_starts_with_its_title_and_a_summary(page):
    first, blank, summary = (page.read_text().split("\n") + ["", "", ""])[:3]
    assert first.startswith("# ") and blank == "" and summary and not summary.startswith(("#", "|", "- ", "```"))


def test_the_link_checker_finds_a_missing_file_and_a_missing_heading(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other\n\n## A `code` heading, with: punctuation\n")
    page.write_text("# Page\n\n[ok](other.md#a-code-heading-with-punctuation) [self](#page)\n"
                    "[gone](missing.md) [bad](other.md#nowhere) `[code](missing.md)`\n\n"
                    "```\n[block](missing.md)\n```\n[web](https://example.org/x)\n")
    assert slug("What `make run` starts") == "what-make-run-starts"
    found = broken(page)
    assert len(found) == 2 and found[0].startswith("missing.md") and found[1].startswith("other.md#nowhere")
