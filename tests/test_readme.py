"""The README and the manual (docs/) stay true to the code: the manual's configuration reference
lists exactly the keys of schemas/config.schema.yaml with the schema's defaults and allowed values,
every command runs with the programs the set-up installs, every plot is explained, every figure
and relative link resolves, and the README's first screen holds the two commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from glueperf.plotting import FIGURES

README = (REPO / "README.md").read_text()
DOCS = REPO / "docs"
CONFIGURATION = (DOCS / "configuration.md").read_text()
RESULTS = (DOCS / "results.md").read_text()
# Records of what ran on the GPU machine, in its own environment (bench/user_env.py puts it on
# PATH): their commands are not a user's, so the commands check leaves them out.
HISTORY = DOCS / "benchmarks-history.md"
# What a user reads and runs: the README and the manual.
MANUAL = [REPO / "README.md", *sorted(p for p in DOCS.glob("*.md") if p != HISTORY)]
# Every page whose links must resolve.
PAGES = [*MANUAL, REPO / "BENCHMARKS.md", HISTORY]
# Pages that the README links and another branch writes. A link to one passes while it is
# absent; once it lands, its entry here must go (test_pending_pages_are_still_pending) so that its
# links are checked like any. (docs/columns.md, generated from glueperf/results.py, has landed.)
PENDING: set[str] = set()
SCHEMA = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
NAME = "<name>"  # how the manual writes a user-chosen model or dataset name
REQUIRED, NO_DEFAULT = object(), object()


def resolve(node: dict) -> dict:
    """A schema node with its local $ref merged in (keys beside the $ref win)."""
    if "$ref" not in node:
        return node
    target = SCHEMA
    for part in node["$ref"].removeprefix("#/").split("/"):
        target = target[part]
    return {**resolve(target), **{k: v for k, v in node.items() if k != "$ref"}}


def schema_keys(node: dict = SCHEMA, prefix: str = "") -> dict[str, dict]:
    """Dotted key path -> its schema node, e.g. 'datasets.<name>.task'. A map of user-chosen
    names (additionalProperties with a schema) contributes '<name>', not a key of its own."""
    node = resolve(node)
    keys = {}
    required = set(node.get("required", []))
    for key, child in node.get("properties", {}).items():
        path = prefix + key
        keys[path] = {**resolve(child), "required": key in required}
        keys.update(schema_keys(child, path + "."))
    named = node.get("additionalProperties")
    if isinstance(named, dict):
        keys.update(schema_keys(named, f"{prefix}{NAME}."))
    return keys


def key_reference() -> dict[str, list[str]]:
    """Key path -> the cells of its row in docs/configuration.md's "Key reference" table."""
    section = CONFIGURATION.split("\n## Key reference\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 4:
            key = cells[0].strip("`")
            assert key not in rows, f"docs/configuration.md lists {key} twice"
            rows[key] = cells
    return rows


def test_the_reference_has_rows():
    assert len(key_reference()) >= 10


def test_every_schema_key_is_in_the_reference():
    missing = sorted(set(schema_keys()) - set(key_reference()))
    assert not missing, f"keys of the schema missing from docs/configuration.md: {missing}"


def test_every_reference_key_is_in_the_schema():
    unknown = sorted(set(key_reference()) - set(schema_keys()))
    assert not unknown, f"keys in docs/configuration.md that the schema lacks: {unknown}"


def written(value) -> str:
    """A YAML value as the reference's default column writes it."""
    if value is None:
        return "`null`"
    if isinstance(value, bool):  # as YAML writes it
        return f"`{str(value).lower()}`"
    if value == "":
        return '`""`'
    if value == {}:
        return "`{}`"
    return f"`{value}`"


@pytest.mark.parametrize("key", sorted(schema_keys()))
def test_defaults_required_and_allowed_values_agree(key):
    node = schema_keys()[key]
    cells = key_reference().get(key)
    if cells is None:
        pytest.skip("not in the reference (reported by test_every_schema_key_is_in_the_reference)")
    _, allowed, default, _ = cells
    if node["required"]:
        assert default == "required", f"{key}: the schema requires it; docs: {default}"
    elif "default" in node:
        assert default == written(node["default"]), f"{key}: schema default {node['default']!r}"
    else:
        assert default != "required" and not default.startswith("`"), (
            f"{key}: the schema has no default; docs: {default}"
        )
    # "as `evaluation.dtype`": the allowed values of that row.
    if same := re.fullmatch(r"as `([^`]+)`", allowed):
        allowed = key_reference()[same.group(1)][1]
    for value in node.get("enum", []):
        assert f"`{value}`" in allowed, f"{key}: allowed value {value} not in docs: {allowed}"


def test_the_plots_section_explains_every_plot():
    """docs/results.md's "The plots" gives each figure a line of its own, how to read it."""
    section = RESULTS.split("\n## The plots\n", 1)[1].split("\n## ", 1)[0]
    explained = re.findall(r"^- `([a-z_]+)\.png`", section, re.M)
    for figure in FIGURES:
        assert figure in explained, f"{figure}.png has no entry in docs/results.md's The plots"


# --- the README's first screen -------------------------------------------------------------------

SET_UP_AND_RUN = (
    "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt"
    " && .venv/bin/snakemake --cores 1"
)
FIRST_SCREEN = 25  # lines


def test_the_first_screen_gives_the_two_commands():
    """The README's first bash block, on its first screen: one command that sets up and runs the
    pipeline, one that sets up and runs the tests (the command CI runs)."""
    first_screen = "\n".join(README.splitlines()[:FIRST_SCREEN])
    block = re.search(r"```bash\n(.*?)```", first_screen, re.S)
    assert block, f"no bash block in the README's first {FIRST_SCREEN} lines"
    commands = [line for line in block.group(1).splitlines() if line and not line.startswith("#")]
    assert commands == [SET_UP_AND_RUN, "bash tests/run.sh"]
    assert "bash tests/run.sh" in (REPO / ".ci" / "run").read_text()


# --- figures and links ---------------------------------------------------------------------------


def outside_code(text: str) -> str:
    """The text without its fenced code blocks (a `# comment` there is not a heading, nor a
    `[x](y)` a link)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def links(text: str) -> list[str]:
    """Targets of the markdown links and images of a page, outside code."""
    prose = re.sub(r"`[^`\n]*`", "", outside_code(text))
    return re.findall(r"\]\(([^)\s]+)\)", prose)


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as
    hyphens; a repeated one gets -1, -2..."""
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+)$", outside_code(text), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        unique, n = slug, 0
        while unique in found:
            n += 1
            unique = f"{slug}-{n}"
        found.add(unique)
    return found


def relative_links(page: Path) -> list[tuple[str, Path, str]]:
    """(link as written, the file it names, its anchor) for each relative link of a page."""
    found = []
    for link in links(page.read_text()):
        if re.match(r"[a-z]+:", link):  # https:, mailto:
            continue
        path, _, anchor = link.partition("#")
        found.append((link, (page.parent / path).resolve() if path else page, anchor))
    return found


def test_the_link_check_sees_links_and_anchors():
    text = "# A `b`, c/d\n## A b c/d\n```bash\n# not a heading [x](no.md)\n```\n[y](docs/x.md#z)"
    assert anchors(text) == {"a-b-cd", "a-b-cd-1"}
    assert links(text) == ["docs/x.md#z"]


def test_every_figure_exists():
    shown = {page: re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", page.read_text()) for page in PAGES}
    assert "docs/figures/rulegraph.png" in shown[REPO / "README.md"]
    for page, figures in shown.items():
        for figure in figures:
            assert (page.parent / figure).is_file(), f"{page.name}: {figure}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    for link, target, anchor in relative_links(page):
        name = target.relative_to(REPO).as_posix() if target.is_relative_to(REPO) else target
        if name in PENDING and not target.exists():
            assert not anchor, f"{page.name}: {link}: an anchor in a page not written yet"
            continue
        assert target.exists(), f"{page.name}: {link}: no such file"
        if anchor:
            assert target.suffix == ".md", f"{page.name}: {link}: an anchor in a non-page"
            assert anchor in anchors(target.read_text()), f"{page.name}: {link}: no such heading"


def test_the_readme_links_every_page_of_the_manual():
    linked = {
        target.relative_to(REPO).as_posix()
        for _, target, _ in relative_links(REPO / "README.md")
        if target.parent == DOCS and target.suffix == ".md"
    }
    pages = {page.relative_to(REPO).as_posix() for page in DOCS.glob("*.md")}
    assert not pages - linked, f"pages of docs/ that the README does not link: {pages - linked}"
    assert linked - pages <= PENDING, f"README links to missing pages: {linked - pages}"


def test_pending_pages_are_still_pending():
    landed = sorted(page for page in PENDING if (REPO / page).exists())
    assert not landed, f"{landed} exist now: remove them from PENDING so their links are checked"


# --- every command runs as written after the set-up command --------------------------------------

# Programs that the set-up installs into .venv/bin only: bare, they are "command not found" (or
# another installation's) unless the venv is activated, which the docs never ask for.
VENV_PROGRAMS = {"snakemake", "python", "pip", "pytest", "ruff", "snakefmt"}


def readme_commands(text: str = README) -> list[str]:
    """Each command of a page (the README's by default): the lines of its bash blocks (comments
    dropped, continued lines joined) and the inline code spans that start with a program, split
    at && || | ;."""
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    lines = [
        line.split(" #")[0]
        for block in blocks
        for line in block.replace("\\\n", " ").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    spans = [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose)]
    lines += [span for span in spans if " " in span]  # one word (`snakemake`) names a program
    return [part.strip() for line in lines for part in re.split(r"&&|\|\||\||;", line)]


def program(command: str) -> str:
    """The program a command runs, after any VAR=value settings."""
    words = [word for word in command.split() if not re.fullmatch(r"[A-Z_]+=\S*", word)]
    return words[0] if words else ""


def manual_commands() -> list[str]:
    return [command for page in MANUAL for command in readme_commands(page.read_text())]


def test_every_command_uses_the_venvs_programs():
    bare = [c for c in manual_commands() if program(c) in VENV_PROGRAMS]
    assert not bare, f"commands that need .venv/bin/ (the set-up does not activate it): {bare}"
    venv = [c for c in manual_commands() if program(c).startswith(".venv/bin/")]
    assert len(venv) >= 30
    assert len([c for c in readme_commands() if program(c).startswith(".venv/bin/")]) >= 5
    for command in venv:  # each one of the programs the set-up installs
        assert program(command).removeprefix(".venv/bin/") in VENV_PROGRAMS, command


def test_the_command_check_sees_bare_programs():
    text = "```bash\nsnakemake --cores 1  # run\n```\nthen `HF_HUB_OFFLINE=1 pip install x` ok"
    assert [program(c) for c in readme_commands(text)] == ["snakemake", "pip"]
