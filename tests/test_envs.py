"""The per-rule conda environments: exact pins, the same pins as requirements.txt, one env and one
log per rule, and every package a rule's code imports present in that rule's env."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from glueperf.infra.plan import code_files

ENV_FILES = sorted((REPO / "envs").glob("*.yaml"))
RULE_FILES = sorted((REPO / "rules").glob("*.smk"))
VERSION = r"\d+(\.\d+)+"


def normalize(name: str) -> str:
    """PEP 503 project name, without extras."""
    return re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()


def requirement_pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            match = re.fullmatch(rf"([A-Za-z0-9_.\-\[\]]+)==({VERSION})", line)
            assert match, f"requirements.txt: '{line}' is not pinned exactly (name==version)"
            pins[normalize(match.group(1))] = match.group(2)
    return pins


def env_dependencies(path: Path) -> tuple[list[str], list[str]]:
    """(conda dependencies, pip dependencies) of an environment file."""
    conda, pip = [], []
    for dependency in yaml.safe_load(path.read_text())["dependencies"]:
        if isinstance(dependency, dict):
            pip.extend(dependency["pip"])
        else:
            conda.append(dependency)
    return conda, pip


def pip_pins(path: Path) -> dict[str, str]:
    pins = {}
    for requirement in env_dependencies(path)[1]:
        name, version = requirement.split("==")
        pins[normalize(name)] = version
    return pins


def rules_in_files() -> dict[str, dict]:
    """rule name -> {"file": Path, directive: [value lines]} from the rule files' text."""
    rules = {}
    for path in RULE_FILES:
        current = None
        directive = None
        for line in path.read_text().splitlines():
            if match := re.match(r"^rule (\w+):", line):
                current = rules[match.group(1)] = {"file": path}
            elif line and not line.startswith(" "):
                current = None
            elif current is not None and (match := re.match(r"^    (\w+):\s*(.*)$", line)):
                directive = match.group(1)
                current[directive] = [match.group(2)] if match.group(2) else []
            elif current is not None and directive and line.startswith("        "):
                current[directive].append(line.strip())
    return rules


# Directives that make a rule run something; a rule without one only names targets (like `all`).
ACTIONS = {"script", "shell", "run", "wrapper", "notebook", "cwl"}


def running_rules() -> list[str]:
    return sorted(name for name, spec in rules_in_files().items() if ACTIONS & set(spec))


def test_there_are_environments_and_rules():
    assert ENV_FILES and RULE_FILES
    assert {"validate_dataset", "evaluate_model", "aggregate_metrics", "plot_results"} <= set(
        running_rules()
    )


def test_rules_that_run_nothing_only_name_targets():
    for name, spec in rules_in_files().items():
        if not ACTIONS & set(spec):
            assert set(spec) - {"file"} <= {"input", "default_target", "localrule"}, name


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_every_package_is_pinned_exactly(path):
    conda, pip = env_dependencies(path)
    names = [re.split(r"[=<>!~ ]", dependency)[0] for dependency in conda]
    assert "python" in names
    for dependency in conda:
        assert re.fullmatch(rf"[A-Za-z0-9_.\-]+==?{VERSION}", dependency), dependency
    assert pip, "the packages come from PyPI through pip"
    for requirement in pip:
        assert re.fullmatch(rf"[A-Za-z0-9_.\-]+=={VERSION}", requirement), requirement


def test_every_environment_has_the_same_python_and_pip():
    firsts = {
        path.name: sorted(
            d for d in env_dependencies(path)[0] if d.split("=")[0] in ("python", "pip")
        )
        for path in ENV_FILES
    }
    assert len({tuple(v) for v in firsts.values()}) == 1, firsts


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_pins_equal_requirements_txt(path):
    required = requirement_pins()
    for name, version in pip_pins(path).items():
        assert name in required, f"{path.name}: {name} is not in requirements.txt"
        assert version == required[name], (
            f"{path.name}: {name}=={version}, requirements.txt: {required[name]}"
        )


def test_evaluate_env_has_torch_and_transformers():
    pins = pip_pins(REPO / "envs" / "evaluate.yaml")
    assert pins["torch"] == requirement_pins()["torch"]
    assert "transformers" in pins and "tokenizers" in pins


def test_rule_files_hold_every_rule_snakemake_sees():
    listed = subprocess.run(
        [sys.executable, "-m", "snakemake", "--list-rules"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert set(listed) - {"all"} == set(rules_in_files())


@pytest.mark.parametrize("rule", running_rules())
def test_every_rule_has_a_log_and_an_existing_conda_env(rule):
    spec = rules_in_files()[rule]
    assert spec.get("log"), f"rule {rule} has no log:"
    assert spec.get("conda"), f"rule {rule} has no conda:"
    (value,) = spec["conda"]
    env = (spec["file"].parent / value.strip("\"'")).resolve()
    assert env.parent == REPO / "envs" and env.is_file(), env


# --- each rule's env holds what its code imports ------------------------------------------------


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def third_party_imports(script: Path) -> set[str]:
    """Top-level names of the non-standard modules a script and the glueperf modules it uses
    import, anywhere in the code (lazy imports inside functions included)."""
    found = set()
    for path in [script, *code_files(script, REPO / "scripts" / "glueperf")]:
        for name in imported_modules(path):
            top = name.split(".")[0]
            if top != "glueperf" and top not in sys.stdlib_module_names:
                found.add(top)
    return found


def rule_scripts() -> dict[str, Path]:
    """Each running rule's script: scripts/<rule>.py, run by the one job command
    (glueperf/infra/job.py), or a `script:`'s file."""
    scripts = {}
    for rule in running_rules():
        spec = rules_in_files()[rule]
        if spec.get("shell") == ["JOB_COMMAND"]:
            scripts[rule] = REPO / "scripts" / f"{rule}.py"
        elif "script" in spec:
            (script,) = spec["script"]
            scripts[rule] = (spec["file"].parent / script.strip("\"'")).resolve()
    return scripts


def test_every_rule_that_runs_something_runs_its_script():
    assert sorted(rule_scripts()) == running_rules()
    for rule, script in rule_scripts().items():
        assert script == REPO / "scripts" / f"{rule}.py" and script.is_file(), rule


@pytest.mark.parametrize("rule", sorted(rule_scripts()))
def test_every_import_of_a_rules_code_is_in_its_env(rule):
    spec = rules_in_files()[rule]
    (env,) = spec["conda"]
    script_path = rule_scripts()[rule]
    pins = pip_pins((spec["file"].parent / env.strip("\"'")).resolve())
    distributions = packages_distributions()
    missing = []
    for module in sorted(third_party_imports(script_path)):
        names = {normalize(d) for d in distributions.get(module, [module])}
        if not names & set(pins):
            missing.append(module)
    assert not missing, f"rule {rule}: {missing} imported but not in its env"
