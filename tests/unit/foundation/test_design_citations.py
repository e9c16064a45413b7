"""Design citations: every ``design.md#<slug>`` in the repository names a heading of docs/design.md,
nothing cites a document that is not in the repository, and every repository path docs/design.md
names (``services/executor/validators.py``, ``shared/db/migrations/``, ``pyproject.toml``) exists,
so the page cannot drift from the tree.

No database, no network: the repository's text files are read and checked. A heading's slug is
``re.sub(r"[^a-z0-9 -]", "", heading.strip("# \\n").lower()).replace(" ", "-")`` (the rule the
design page states). Each check is a function returning problems as ``file:line: what``, so the
same checks also run against deliberately broken text (``test_checks_catch_*``) to prove they
would fail.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DESIGN = ROOT / "docs" / "design.md"
THIS_FILE = Path(__file__).resolve()

# Where citations may live: the code, its tests, the deployment and the docs.
SCANNED_DIRS = ("services", "shared", "sim", "stack", "oraclectl", "bench", "tests", "deploy", "docs", "protos")
SCANNED_ROOT_FILES = ("README.md", "Makefile", "Dockerfile", "pyproject.toml", "buf.yaml")
TEXT_SUFFIXES = frozenset({".py", ".pyi", ".sql", ".md", ".yaml", ".yml", ".toml", ".txt", ".proto", ".sh", ".cfg"})
SKIPPED_DIRS = frozenset({".venv", "__pycache__", "node_modules", ".git", ".mypy_cache", ".ruff_cache"})

# A link or citation to a heading of the design page: docs/design.md#slug, ../docs/design.md#slug,
# design.md#slug (from inside docs/); a placeholder such as design.md#<slug> is not one.
CITATION = re.compile(r"design\.md#([A-Za-z0-9_-]+)")
# An in-page link inside docs/design.md itself.
IN_PAGE_LINK = re.compile(r"\]\(#([^)]*)\)")
HEADING = re.compile(r"^#{1,6} .*$")
# A repository path on the design page: anything under a top-level folder (services/..., tests/...,
# a trailing "/" for a folder, "*" for a glob), or a backticked file name at the root (`Makefile`).
TREE_PATH = re.compile(r"(?<![\w./-])((?:" + "|".join(SCANNED_DIRS) + r")/[\w./*-]*)")
ROOT_FILE = re.compile(r"`([\w-]+\.(?:md|toml|yaml|yml|cfg|txt)|Makefile|Dockerfile)`")

# Citations of documents that are not in the repository (the brief kept beside it, by section
# number or by its upper-case name; paths outside the repository), and guarantee numbers with
# no link saying which guarantee of docs/design.md is meant.
FOREIGN = (
    (re.compile(r"§"), "cites a numbered section of a document not in the repository"),
    (re.compile(r"DESIGN\.md"), "cites DESIGN.md, which is not in the repository (cite docs/design.md#<slug>)"),
    (re.compile(r"\.\./shared/|/work/shared"), "cites a path outside the repository"),
)
GUARANTEE_NUMBER = re.compile(r"\b[Gg]uarantees?\s+#?\d")

# Lines that may keep an old citation because their file can no longer change: an applied
# migration is checksummed by shared/db/migrate.py, so editing even a comment in it would stop
# every existing database from migrating. docs/design.md#guarantees keeps the numbering they use.
FROZEN = {
    ("shared/db/migrations/0001_foundation.sql", "one proposal, at most one execution, whatever the number of callers"),
}


def slug(heading: str) -> str:
    """The anchor of a markdown heading line, by the design page's rule."""
    return re.sub(r"[^a-z0-9 -]", "", heading.strip("# \n").lower()).replace(" ", "-")


def headings(markdown: str) -> list[str]:
    """The heading lines of ``markdown``, outside fenced code blocks."""
    out: list[str] = []
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and HEADING.match(line):
            out.append(line)
    return out


def scanned_files(root: Path = ROOT) -> Iterator[Path]:
    """Every text file where a citation could be, except this test (it spells the bad patterns)."""
    for name in SCANNED_ROOT_FILES:
        path = root / name
        if path.is_file():
            yield path
    for top in SCANNED_DIRS:
        for path in sorted((root / top).rglob("*")):
            if any(part in SKIPPED_DIRS for part in path.relative_to(root).parts):
                continue
            if not path.is_file() or path.resolve() == THIS_FILE or "_pb2" in path.name:
                continue
            if path.suffix in TEXT_SUFFIXES:
                yield path


def lines_of(files: Iterable[Path], root: Path = ROOT) -> Iterator[tuple[str, int, str]]:
    """(repository-relative path, line number, line) of every line of ``files``."""
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        rel = path.relative_to(root).as_posix()
        for number, line in enumerate(text.splitlines(), start=1):
            yield rel, number, line


def dangling_citations(lines: Iterable[tuple[str, int, str]], anchors: set[str]) -> list[str]:
    """Citations of a design.md heading that does not exist."""
    return [
        f"{rel}:{number}: design.md#{target} names no heading of docs/design.md"
        for rel, number, line in lines
        for target in CITATION.findall(line)
        if target not in anchors
    ]


def foreign_citations(lines: Iterable[tuple[str, int, str]]) -> list[str]:
    """Citations of documents outside the repository, and guarantee numbers without a link."""
    problems: list[str] = []
    for rel, number, line in lines:
        if any(rel == path and text in line for path, text in FROZEN):
            continue
        problems += [f"{rel}:{number}: {why}" for pattern, why in FOREIGN if pattern.search(line)]
        if GUARANTEE_NUMBER.search(line) and not CITATION.search(line):
            problems.append(f"{rel}:{number}: cites a guarantee by number; cite docs/design.md#<slug> instead")
    return problems


def in_page_problems(markdown: str, rel: str = "docs/design.md") -> list[str]:
    """Duplicate heading slugs (a citation would be ambiguous) and in-page links to no heading."""
    found = [slug(h) for h in headings(markdown)]
    problems = [f"{rel}: two headings share the anchor #{s}" for s in sorted({s for s in found if found.count(s) > 1})]
    anchors = set(found)
    for number, line in enumerate(markdown.splitlines(), start=1):
        problems += [
            f"{rel}:{number}: link #{t} names no heading" for t in IN_PAGE_LINK.findall(line) if t not in anchors
        ]
    return problems


def missing_paths(markdown: str, root: Path = ROOT, rel: str = "docs/design.md") -> list[str]:
    """Repository paths named in ``markdown`` that do not exist under ``root``."""
    problems: list[str] = []
    for number, line in enumerate(markdown.splitlines(), start=1):
        named = [p.rstrip(".") for p in TREE_PATH.findall(line)] + ROOT_FILE.findall(line)
        problems += [
            f"{rel}:{number}: {path} does not exist in the repository"
            for path in named
            if not (any(root.glob(path)) if "*" in path else (root / path).exists())
        ]
    return problems


def design_anchors() -> set[str]:
    return {slug(h) for h in headings(DESIGN.read_text(encoding="utf-8"))}


# ------------------------------------------------------------------ the repository


def test_design_page_exists_with_unique_headings_and_working_in_page_links() -> None:
    text = DESIGN.read_text(encoding="utf-8")
    assert len(headings(text)) > 20
    assert in_page_problems(text) == []


def test_every_design_citation_names_an_existing_heading() -> None:
    lines = list(lines_of(scanned_files()))
    cited = [line for line in lines if CITATION.search(line[2])]
    assert len(cited) >= 15, "the code cites the design page; finding almost nothing means the scan is broken"
    assert dangling_citations(lines, design_anchors()) == []


def test_nothing_cites_a_document_outside_the_repository() -> None:
    assert foreign_citations(lines_of(scanned_files())) == []


def test_every_path_the_design_page_names_exists() -> None:
    text = DESIGN.read_text(encoding="utf-8")
    assert len(TREE_PATH.findall(text)) >= 30, "the page names many files; finding few means the scan is broken"
    assert missing_paths(text) == []


def test_frozen_exceptions_still_exist() -> None:
    """An exception outlives its reason only while the frozen line is really there."""
    for path, text in FROZEN:
        assert text in (ROOT / path).read_text(encoding="utf-8"), f"{path} no longer holds the frozen line: drop it"


def test_decided_but_unenforced_decisions_say_so() -> None:
    """Every decision of 2026-11-30 states its status, so the page never claims a mechanism that
    does not exist: either "not yet enforced" or a status naming where it is enforced."""
    text = DESIGN.read_text(encoding="utf-8")
    section = text.split("\n## Decisions of 2026-11-30\n", 1)[1].split("\n## ", 1)[0]
    decisions = section.split("\n### ")[1:]
    assert len(decisions) >= 6
    for decision in decisions:
        assert "**Status:" in decision, f"decision {decision.splitlines()[0]!r} states no status"


# ------------------------------------------------------------------ the checks would fail


def test_slug_rule() -> None:
    assert slug("### Balance net of in-flight orders\n") == "balance-net-of-in-flight-orders"
    assert slug("## Decisions of 2026-11-30") == "decisions-of-2026-11-30"
    assert slug("## Principals and rights") == "principals-and-rights"
    assert slug("### FAILED is final, except `found_late`") == "failed-is-final-except-foundlate"


def test_checks_catch_a_dangling_citation() -> None:
    lines = [
        ("services/x.py", 3, "# see docs/design.md#idempotency"),
        ("services/x.py", 7, '"""Rule of docs/design.md#no-such-heading."""'),
        ("deploy/README.md", 2, "[rule](../docs/design.md#Idempotency)"),
    ]
    assert dangling_citations(lines, {"idempotency"}) == [
        "services/x.py:7: design.md#no-such-heading names no heading of docs/design.md",
        "deploy/README.md:2: design.md#Idempotency names no heading of docs/design.md",
    ]


def test_checks_catch_a_foreign_citation() -> None:
    lines = [
        ("services/a.py", 1, '"""The state machine of DESIGN §3."""'),
        ("services/b.py", 2, "# (DESIGN.md guarantee 3)"),
        ("tests/c.py", 3, '"""Guarantee 7 under a storm."""'),
        ("docs/d.md", 4, "see ../shared/DESIGN.md"),
        ("deploy/e.yaml", 5, "# key separation (guarantee 3, docs/design.md#key-separation)"),
        (
            "shared/db/migrations/0001_foundation.sql",
            155,
            "-- Guarantee 1: one proposal, at most one execution, whatever the number of callers.",
        ),
        ("shared/db/migrations/0099_new.sql", 1, "-- Guarantee 1 again"),
    ]
    assert foreign_citations(lines) == [
        "services/a.py:1: cites a numbered section of a document not in the repository",
        "services/b.py:2: cites DESIGN.md, which is not in the repository (cite docs/design.md#<slug>)",
        "services/b.py:2: cites a guarantee by number; cite docs/design.md#<slug> instead",
        "tests/c.py:3: cites a guarantee by number; cite docs/design.md#<slug> instead",
        "docs/d.md:4: cites DESIGN.md, which is not in the repository (cite docs/design.md#<slug>)",
        "docs/d.md:4: cites a path outside the repository",
        "shared/db/migrations/0099_new.sql:1: cites a guarantee by number; cite docs/design.md#<slug> instead",
    ]


def test_checks_catch_a_path_that_is_not_in_the_tree(tmp_path: Path) -> None:
    (tmp_path / "services" / "executor").mkdir(parents=True)
    (tmp_path / "services" / "executor" / "validators.py").touch()
    (tmp_path / "pyproject.toml").touch()
    page = (
        "`services/executor/validators.py` owns the checks; see services/executor/.\n"
        "The claim lives in `services/executor/claims.py` and `services/executor/*.py`.\n"
        "Ruff reads `pyproject.toml`; the stack reads `Procfile` and docs/design.md#cooldown.\n"
    )
    assert missing_paths(page, tmp_path, "p.md") == [
        "p.md:2: services/executor/claims.py does not exist in the repository",
        "p.md:3: docs/design.md does not exist in the repository",
    ]


def test_checks_catch_duplicate_headings_and_broken_in_page_links() -> None:
    page = "# D\n## Cooldown\ntext [x](#cooldown) [y](#gone)\n```\n## not a heading\n```\n### Cooldown\n"
    assert in_page_problems(page, "p.md") == [
        "p.md: two headings share the anchor #cooldown",
        "p.md:3: link #gone names no heading",
    ]
