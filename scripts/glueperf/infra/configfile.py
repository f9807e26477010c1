"""The config files read strictly, before Snakemake reads them its own lenient way.

Snakemake's YAML reader keeps the last of two equal keys in a mapping, so a model or setting
written twice is silently half-ignored; and for a file that is not a mapping, or not YAML at all,
its message names no file. Here each such file is one GlueperfError naming the file, the key and
the line.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from glueperf import GlueperfError


class ConfigFileError(GlueperfError):
    pass


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key occurring twice in one mapping."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep=False):
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise ConfigFileError(
                f"key '{key}' occurs twice in one mapping (lines {seen[key]} and {line}); "
                "YAML would keep only the last one and silently drop the other"
            )
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_config_file(path) -> dict:
    """The file's mapping; ConfigFileError naming the file for duplicate keys, bad YAML or a
    top level that is not a mapping."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as stream:
            data = yaml.load(stream, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)
    except ConfigFileError as error:
        raise ConfigFileError(f"config file {path}: {error}") from None
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" (line {where.line + 1})" if where else ""
        problem = getattr(error, "problem", None) or error
        raise ConfigFileError(f"config file {path}: not valid YAML{line}: {problem}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigFileError(f"config file {path}: unreadable ({error})") from None
    if not isinstance(data, dict):
        raise ConfigFileError(
            f"config file {path}: must be a mapping of keys at the top level (models:, "
            f"datasets:, ...), found {type(data).__name__}"
            + (f" {data!r}"[:80] if data is not None else " (an empty file)")
        )
    return data


def check_config_files(paths) -> None:
    """Read every existing config file strictly; a missing one is Snakemake's to report."""
    for path in paths:
        if Path(path).is_file():
            read_config_file(path)
