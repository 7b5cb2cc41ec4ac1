"""The README and docs/ stay in step with the tree: a README a newcomer reads in five minutes,
links that resolve, and only commands, options, make targets and paths that exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer

from geobench.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 150  # issue 20: the rest lives in docs/

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
SPAN = re.compile(r"`([^`\n]+)`")
# A path into the repository named in inline code; placeholders (<env>), globs and brace lists are not paths.
REPO_PATH = re.compile(r"(?:geobench|experiments|tests|benchmarks|examples|results|figures|docs)/[\w./-]*")


def _ids(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _code(text: str) -> list[str]:
    """Every line of a fenced block and every inline code span outside them."""
    blocks = FENCE.findall(text)
    lines = [line for block in blocks for line in block.splitlines()[1:-1]]
    return lines + SPAN.findall(FENCE.sub("", text))


def _anchors(page: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *$", FENCE.sub("", page.read_text()), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return out


def test_readme_is_short() -> None:
    lines = README.read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail into docs/"


def test_readme_links_every_docs_page() -> None:
    linked = {Path(m.split("#")[0]).name for m in LINK.findall(README.read_text())}
    missing = [p.name for p in PAGES[1:] if p.name not in linked]
    assert not missing, f"docs pages the README does not link: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=_ids)
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {file.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def _command_words(snippet: str) -> list[list[str]]:
    """The words of a snippet that is a ``geobench`` command line, up to a comment or a ``)``."""
    match = re.match(r"\s*(?:\$\()?geobench +([^#)]*)", snippet)
    return [[w.strip("[]") for w in match.group(1).split()]] if match else []


def _check_command(root: Any, words: list[str]) -> str | None:
    """Why ``geobench WORDS`` is not a command of ``root`` (the CLI's click group), or None if it is.

    Groups are found by their ``commands`` mapping: typer builds them on a click it may vendor."""
    if not words or words[0].startswith("-"):
        return None
    command, rest = root, words
    while hasattr(command, "commands") and rest and not rest[0].startswith("-"):
        names = rest[0].split("|")  # "data|command": each alternative must exist
        missing = [n for n in names if n not in command.commands]
        if missing:
            return f"no command {missing[0]!r} (have: {', '.join(sorted(command.commands))})"
        command, rest = command.commands[names[-1]], rest[1:]
    options = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)} | {"--help"}
    unknown = [w.split("=")[0] for w in rest if w.startswith("--") and w.split("=")[0] not in options]
    return f"{command.name} has no option {unknown[0]}" if unknown else None


@pytest.mark.parametrize("page", PAGES, ids=_ids)
def test_geobench_commands_exist(page: Path) -> None:
    root = typer.main.get_command(app)
    found, wrong = 0, []
    for snippet in _code(page.read_text()):
        for words in _command_words(snippet):
            found += 1
            why = _check_command(root, words)
            if why:
                wrong.append(f"`geobench {' '.join(words)}`: {why}")
    assert not wrong, f"{page.relative_to(ROOT)}: " + "; ".join(wrong)
    if page == README:
        assert found >= 8, "the README names the product's commands"


@pytest.mark.parametrize("page", PAGES, ids=_ids)
def test_make_targets_exist(page: Path) -> None:
    targets = set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.M))
    named = {t for snippet in _code(page.read_text()) for t in re.findall(r"(?<![\w-])make ([a-z][\w-]*)", snippet)}
    assert named <= targets, f"{page.relative_to(ROOT)} names make targets that do not exist: {named - targets}"


@pytest.mark.parametrize("page", PAGES, ids=_ids)
def test_named_paths_exist(page: Path) -> None:
    spans = SPAN.findall(FENCE.sub("", page.read_text()))
    paths = {s for s in spans if REPO_PATH.fullmatch(s)}
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"{page.relative_to(ROOT)} names paths that do not exist: {missing}"


def test_the_checks_catch_what_they_should() -> None:
    root = typer.main.get_command(app)
    assert _check_command(root, ["mujoco", "distill", "--steps", "3"]) is None
    assert _check_command(root, ["verl", "data|command"]) is None
    assert "no command 'train'" in _check_command(root, ["train"])
    assert "no command 'distil'" in _check_command(root, ["mujoco", "distil"])
    assert "no option --stepz" in _check_command(root, ["llm", "--stepz", "3"])
    assert _command_words("$(geobench verl command --run x) trainer.n=4  # note") == [["verl", "command", "--run", "x"]]
    assert _command_words("geobench/objectives/") == _command_words("the installable geobench objective") == []
