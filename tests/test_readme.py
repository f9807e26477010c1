"""The README stays true to the code: its configuration reference lists exactly the keys of
schemas/config.schema.yaml with the schema's defaults and allowed values, and every figure it
shows exists."""

from __future__ import annotations

import re

import pytest
import yaml

from conftest import REPO
from glueperf.plotting import PLOTS

README = (REPO / "README.md").read_text()
SCHEMA = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
NAME = "<name>"  # how the README writes a user-chosen model or dataset name
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


def readme_reference() -> dict[str, list[str]]:
    """Key path -> the cells of its row in the README's "Configuration reference" table."""
    section = README.split("\n## Configuration reference\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 4:
            key = cells[0].strip("`")
            assert key not in rows, f"README lists {key} twice"
            rows[key] = cells
    return rows


def test_the_reference_has_rows():
    assert len(readme_reference()) >= 10


def test_every_schema_key_is_in_the_readme():
    missing = sorted(set(schema_keys()) - set(readme_reference()))
    assert not missing, f"keys of the schema missing from the README's reference: {missing}"


def test_every_readme_key_is_in_the_schema():
    unknown = sorted(set(readme_reference()) - set(schema_keys()))
    assert not unknown, f"keys in the README's reference that the schema lacks: {unknown}"


def written(value) -> str:
    """A YAML value as the README's default column writes it."""
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
    cells = readme_reference().get(key)
    if cells is None:
        pytest.skip("not in the README (reported by test_every_schema_key_is_in_the_readme)")
    _, allowed, default, _ = cells
    if node["required"]:
        assert default == "required", f"{key}: the schema requires it; README: {default}"
    elif "default" in node:
        assert default == written(node["default"]), f"{key}: schema default {node['default']!r}"
    else:
        assert default != "required" and not default.startswith("`"), (
            f"{key}: the schema has no default; README: {default}"
        )
    # "as `evaluation.dtype`": the allowed values of that row.
    if same := re.fullmatch(r"as `([^`]+)`", allowed):
        allowed = readme_reference()[same.group(1)][1]
    for value in node.get("enum", []):
        assert f"`{value}`" in allowed, f"{key}: allowed value {value} not in README: {allowed}"


def test_every_figure_the_readme_shows_exists():
    figures = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", README)
    assert "docs/figures/rulegraph.png" in figures
    for figure in figures:
        assert (REPO / figure).is_file(), figure


def test_the_readme_names_every_plot():
    for plot in PLOTS:
        assert f"{plot}.png" in README or f"{plot}," in README or f",{plot}}}" in README, plot


# --- every command runs as written after the set-up command --------------------------------------

# Programs that the set-up installs into .venv/bin only: bare, they are "command not found" (or
# another installation's) unless the venv is activated, which the README never asks for.
VENV_PROGRAMS = {"snakemake", "python", "pip", "pytest", "ruff", "snakefmt"}


def readme_commands(text: str = README) -> list[str]:
    """Each command of the README: the lines of its bash blocks (comments dropped, continued
    lines joined) and the inline code spans that start with a program, split at && || | ;."""
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


def test_every_command_uses_the_venvs_programs():
    bare = [c for c in readme_commands() if program(c) in VENV_PROGRAMS]
    assert not bare, f"commands that need .venv/bin/ (the set-up does not activate it): {bare}"
    venv = [c for c in readme_commands() if program(c).startswith(".venv/bin/")]
    assert len(venv) >= 10
    for command in venv:  # each one of the programs the set-up installs
        assert program(command).removeprefix(".venv/bin/") in VENV_PROGRAMS, command


def test_the_command_check_sees_bare_programs():
    text = "```bash\nsnakemake --cores 1  # run\n```\nthen `HF_HUB_OFFLINE=1 pip install x` ok"
    assert [program(c) for c in readme_commands(text)] == ["snakemake", "pip"]
