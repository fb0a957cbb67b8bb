"""A clone builds and tests with nothing beside it: no doc link or test path leads outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.spec import SPEC_PATH, load_spec

REPO = Path(__file__).resolve().parents[2]
# Folders that sat beside the repository on the machine it was written on (spelled in pieces so this
# file does not match itself).
OUTSIDE = re.compile("/" + "work/|" + r"(?<![\w-])shared/(spec|protocol|models|ARCHITECTURE|STYLE)")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")
PARENTS = re.compile(r"__file__\)\.resolve\(\)\.parents\[(\d+)\]")


def _files(*patterns: str) -> list[Path]:
    found = [path for pattern in patterns for path in REPO.glob(pattern)]
    return sorted(p for p in found if "node_modules" not in p.parts and ".venv" not in p.parts)


def test_the_openapi_document_is_in_the_repository() -> None:
    assert SPEC_PATH.is_relative_to(REPO) and SPEC_PATH.is_file()
    spec = load_spec()
    assert sum(len(operations) for operations in spec["paths"].values()) == 35  # docs/api.md lists them
    assert {"chat-started", "chat-ended", "tool-call"} <= set(spec["webhooks"])


def test_no_doc_code_or_script_names_a_folder_outside_the_repository() -> None:
    files = _files(
        "*.md", "docs/**/*.md", "tests/**/*.py", "openevi/**/*.py", "benchmarks/**/*.py", "scripts/*", ".ci/*"
    )
    hits = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert hits == []


def test_every_relative_doc_link_resolves_inside_the_repository() -> None:
    broken = []
    for doc in _files("*.md", "docs/**/*.md", "benchmarks/**/*.md"):
        for target in MARKDOWN_LINK.findall(doc.read_text()):
            if re.match(r"^[a-z]+:|^#", target):
                continue
            resolved = (doc.parent / target.split("#", 1)[0]).resolve()
            if not resolved.is_relative_to(REPO) or not resolved.exists():
                broken.append(f"{doc.relative_to(REPO)} -> {target}")
    assert broken == []


def test_no_python_file_climbs_above_the_repository_root() -> None:
    climbing = []
    for path in _files("tests/**/*.py", "openevi/**/*.py", "benchmarks/**/*.py"):
        depth = len(path.relative_to(REPO).parts) - 1  # parents[depth] is the repository root
        climbing += [
            f"{path.relative_to(REPO)}: parents[{n}]" for n in PARENTS.findall(path.read_text()) if int(n) > depth
        ]
    assert climbing == []
