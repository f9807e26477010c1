"""A virtual environment holding what requirements.txt installs and nothing else, made on a host
whose Python comes with many packages preinstalled (the GPU machine): start-up is then timed as
a user's `pip install -r requirements.txt` has it.

Why: transformers imports optional packages when they are installed (scikit-learn from its
generation code, scipy from its losses, ...). A host with them preinstalled times imports that
a user of this pipeline never pays.

    python bench/user_env.py TARGET [WHEELS_DIR]

Every distribution that requirements.txt names, and every one they require (the closure, with
the extras named there), is linked from the running interpreter's site-packages into TARGET's
(no copy, no download: the host's versions, printed). Wheels in WHEELS_DIR (the packages the
host lacks, e.g. snakemake's) are installed into TARGET first; their requirements join the
closure. Prints what is missing (nothing may be), then TARGET/bin/python.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REQUIREMENTS = Path(__file__).resolve().parents[1] / "requirements.txt"


def requirement_lines(path: Path) -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line]


def closure(
    roots: list[Requirement], distributions: dict[str, metadata.Distribution]
) -> tuple[set[str], set[str]]:
    """Names (canonical) of the distributions that ``roots`` need, and of those not found."""
    found, missing = set(), set()
    todo = [(root, frozenset(root.extras)) for root in roots]
    seen = set()
    while todo:
        requirement, extras = todo.pop()
        name = canonicalize_name(requirement.name)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        distribution = distributions.get(name)
        if distribution is None:
            missing.add(name)
            continue
        found.add(name)
        for line in distribution.requires or []:
            needed = Requirement(line)
            wanted = needed.marker is None or any(
                needed.marker.evaluate({"extra": extra}) for extra in ("", *extras)
            )
            if wanted:
                todo.append((needed, frozenset(needed.extras)))
    return found, missing


def top_level_entries(distribution: metadata.Distribution) -> set[str]:
    """The entries of site-packages that the distribution installed (packages, modules, its
    .dist-info, .libs folders), not scripts outside it."""
    entries = set()
    for file in distribution.files or []:
        parts = Path(file).parts
        if parts and parts[0] != ".." and not parts[0].endswith(".pth"):
            entries.add(parts[0])
    return entries


def main() -> None:
    target = Path(sys.argv[1])
    wheels = sorted(Path(sys.argv[2]).glob("*.whl")) if len(sys.argv) > 2 else []
    venv.create(target, with_pip=False, symlinks=True)
    python = target / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    if wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps"]
            + ["--no-compile", "--target", str(site), *map(str, wheels)],
            check=True,
        )
    installed = {canonicalize_name(d.metadata["Name"]): d for d in metadata.distributions()}
    own = {
        canonicalize_name(d.metadata["Name"]): d for d in metadata.distributions(path=[str(site)])
    }
    needed, missing = closure(requirement_lines(REQUIREMENTS), {**installed, **own})
    for name in sorted(needed - own.keys()):
        distribution = installed[name]
        origin = Path(distribution.locate_file(""))
        for entry in top_level_entries(distribution):
            link = site / entry
            if not link.exists() and (origin / entry).exists():
                link.symlink_to(origin / entry)
        print(f"linked {distribution.metadata['Name']}=={distribution.version}")
    print(f"not on this host: {', '.join(sorted(missing)) or 'nothing'}")
    print(python)


if __name__ == "__main__":
    main()
