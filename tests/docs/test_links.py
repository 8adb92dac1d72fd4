"""The user documents: every relative link resolves to a file, and none cites an issue or a commit."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", ROOT / "BENCHMARKS.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def relative_links(page: Path) -> list[str]:
    return [t for t in LINK.findall(page.read_text()) if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    missing = [t for t in relative_links(page) if not (page.parent / t.split("#")[0]).exists()]
    assert not missing, f"{page.name}: links to missing files: {missing}"


@pytest.mark.parametrize("page", [p for p in PAGES if p.name != "CHANGELOG.md"], ids=lambda p: str(p.relative_to(ROOT)))
def test_no_issue_numbers_or_commit_hashes(page):
    text = page.read_text()
    issues = re.findall(r"\bissues? \d+|(?<![\w&])#\d+\b", text, flags=re.I)
    hashes = [h for h in re.findall(r"(?<![\w./-])[0-9a-f]{7,40}(?![\w-])", text)
              if re.search(r"[a-f]", h) and re.search(r"\d", h)]
    assert not issues and not hashes, f"{page.name}: {issues} {hashes}"
