"""The core's layer order holds: no file under libremap/src includes a file
of a layer above its own.

The order is docs/ARCHITECTURE.md's "Layers" table, written once more here
(LAYERS) so that a change to it is a deliberate edit of both. A layer may
include its own files and those of any layer below it, plus the public
header libremap.h and system headers.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "libremap" / "src"

# Bottom to top.
LAYERS = ("base", "os", "heap", "plan", "compact", "backends", "api")
PUBLIC = {"libremap.h"}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)


def upward_includes(files: dict[str, str]) -> list[str]:
    """Every include in `files` (path relative to libremap/src -> text) that
    goes up the order, or names a folder that is no layer, as
    "file: include" lines."""
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    bad = []
    for path, text in sorted(files.items()):
        layer = path.split("/", 1)[0]
        if layer not in rank:
            if "/" in path:
                bad.append(f"{path}: in a folder that is no layer")
            continue  # libremap.map and the like
        for target in INCLUDE.findall(text):
            if target in PUBLIC:
                continue
            to = target.split("/", 1)[0]
            if "/" not in target or to not in rank:
                bad.append(f"{path}: {target} (not a layer's file)")
            elif rank[to] > rank[layer]:
                bad.append(f"{path}: {target} ({layer} is below {to})")
    return bad


def source_files() -> dict[str, str]:
    return {
        str(p.relative_to(SRC)): p.read_text() for p in SRC.rglob("*") if p.suffix in (".h", ".cpp")
    }


def test_the_layers_are_the_folders():
    assert sorted(p.name for p in SRC.iterdir() if p.is_dir()) == sorted(LAYERS)


def test_no_include_goes_up():
    files = source_files()
    assert len(files) > 50  # the walk found the sources
    assert upward_includes(files) == []


def test_architecture_md_lists_the_same_order():
    doc = (SRC.parent.parent / "docs" / "ARCHITECTURE.md").read_text()
    table = doc[doc.index("## Layers") :]
    rows = re.findall(r"^\| `(\w+)/` \|", table, re.MULTILINE)
    assert tuple(rows) == LAYERS


@pytest.mark.parametrize(
    "files, found",
    [
        ({"heap/heap.cpp": '#include "plan/plan.h"\n'}, ["heap/heap.cpp: plan/plan.h"]),
        ({"base/status.h": '#include "api/handle.h"\n'}, ["base/status.h: api/handle.h"]),
        ({"compact/x.h": '  #  include "backends/move.h"'}, ["compact/x.h: backends/move.h"]),
        ({"os/vm.cpp": '#include "status.h"\n'}, ["os/vm.cpp: status.h"]),
        ({"tools/x.cpp": "\n"}, ["tools/x.cpp: in a folder"]),
        ({"api/heap_api.cpp": '#include "compact/compactor.h"\n#include "libremap.h"\n'}, []),
        ({"heap/heap.cpp": '#include <plan/plan.h>\n// #include "api/x.h" in a comment\n'}, []),
    ],
)
def test_the_checker_finds_an_upward_include(files, found):
    bad = upward_includes(files)
    assert len(bad) == len(found), bad
    for b, f in zip(bad, found):
        assert b.startswith(f), bad


CITATION = re.compile(r'ARCHITECTURE\.md,?\s*(?://\s*)?"([^"]+)"')


def test_comments_cite_sections_that_exist():
    doc = (SRC.parent.parent / "docs" / "ARCHITECTURE.md").read_text()
    headings = set(re.findall(r"^## (.+)$", doc, re.MULTILINE))
    cited = {}
    for path, text in source_files().items():
        # A citation may wrap onto the next comment line.
        flat = re.sub(r"\n\s*//\s*", " ", text)
        for title in CITATION.findall(flat):
            cited.setdefault(title, path)
    assert cited, "no comment cites ARCHITECTURE.md"
    missing = {t: p for t, p in cited.items() if t not in headings}
    assert not missing, f"cited sections that ARCHITECTURE.md lacks: {missing}"


def test_no_comment_cites_a_document_outside_the_repo():
    for path, text in source_files().items():
        assert not re.search(r"DESIGN(\.md)?\s*(§|section)|\bRFC\b|\bissue \d+", text), path
