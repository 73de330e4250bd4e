"""The docs hold together: every relative link in README.md, RULES.md, docs/ and records/ resolves to a file (and
a #fragment to a heading of it), the README stays a front door, and every docs page is linked from it."""
import glob
import os
import re

import pytest

from tools_logtext import ROOT

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
PAGES = sorted({os.path.relpath(p, ROOT) for pattern in ("*.md", "docs/*.md", "records/*.md", "records/*/*.md")
                for p in glob.glob(os.path.join(ROOT, pattern))})


def anchors(path):
    """GitHub's anchors of a markdown file's headings: lower case, punctuation dropped, spaces to hyphens."""
    with open(path) as f:
        heads = [m[1] for m in re.finditer(r"^#+ (.*)$", f.read(), re.M)]
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def links(page):
    with open(os.path.join(ROOT, page)) as f:
        text = re.sub(r"```.*?```", "", f.read(), flags=re.S)  # code blocks hold no links
    return [m[1] for m in LINK.finditer(text) if not re.match(r"[a-z]+:", m[1])]


def test_there_are_pages_and_links():
    assert {"README.md", "RULES.md", "docs/writing-an-approach.md", "docs/checkpoints.md"} <= set(PAGES)
    assert sum(len(links(p)) for p in PAGES) > 20


@pytest.mark.parametrize("page", PAGES)
def test_every_relative_link_resolves(page):
    for link in links(page):
        target, _, fragment = link.partition("#")
        path = os.path.normpath(os.path.join(ROOT, os.path.dirname(page), target)) if target else os.path.join(ROOT, page)
        assert os.path.exists(path), f"{page}: {link} -> {path} does not exist"
        if fragment and path.endswith(".md"):
            assert fragment in anchors(path), f"{page}: {link}: no heading #{fragment} in {target or page}"


def test_the_readme_is_a_front_door_that_links_every_docs_page():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    assert len(readme.splitlines()) <= 300
    linked = {os.path.normpath(link.partition("#")[0]) for link in links("README.md")}
    for page in (p for p in PAGES if p.startswith("docs/")):
        assert page in linked, f"README.md does not link {page}"


SECTION_ROW = re.compile(r"^\| (Dataloader|Architecture|Optimizer|Setup|Init & Optim Hyperparams|Training and "
                         r"Validation) \| (\d+)-(\d+) \| (\d+) \|", re.M)


def test_the_section_lines_that_writing_an_approach_cites_are_the_scripts():
    """docs/writing-an-approach.md's table of the script's sections: each starts at the line of its heading
    comment (after the separator) and ends on the line before the next separator (or the file's last line)."""
    with open(os.path.join(ROOT, "docs", "writing-an-approach.md")) as f:
        text = f.read()
    rows = SECTION_ROW.findall(text)
    with open(os.path.join(ROOT, "train_gpt_simple.py")) as f:
        lines = f.read().splitlines()
    assert [r[0] for r in rows] == ["Dataloader", "Architecture", "Optimizer", "Setup", "Init & Optim Hyperparams",
                                    "Training and Validation"]
    separator = "# " + "-" * 77
    for name, first, last, count in rows:
        first, last = int(first), int(last)
        assert lines[first - 1].startswith(f"# {name}") and lines[first - 2] == separator, (name, first)
        assert last == len(lines) or lines[last] == separator, (name, last)
        assert int(count) == last - first + 1, (name, count)
    assert f"The shipped script has {len(lines)} lines; lines 1-{int(rows[0][1]) - 2} are its docstring" in text


def test_every_line_of_the_script_fits_100_characters():
    """Every user reads the whole script: no line of it is wider than 100 characters."""
    with open(os.path.join(ROOT, "train_gpt_simple.py")) as f:
        wide = [(i, len(line)) for i, line in enumerate(f.read().splitlines(), 1) if len(line) > 100]
    assert wide == [], f"train_gpt_simple.py lines over 100 characters (line, width): {wide}"
