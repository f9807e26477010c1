"""The config files read strictly, before Snakemake reads them its own lenient way, and the
schema's verdict on them said in one line.

Snakemake's YAML reader keeps the last of two equal keys in a mapping, so a model or setting
written twice is silently half-ignored; and for a file that is not a mapping, or not YAML at all,
its message names no file. Here each such file is one GlueperfError naming the file, the key and
the line. A config that the schema refuses (a key misspelt, a wrong type) made Snakemake print
the offending mapping and the whole schema, about 150 lines; ``schema_error`` says it in one:
file, key path, what is wrong and, for an unknown key, the nearest valid one.
"""

from __future__ import annotations

import difflib
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


def schema_error(error: Exception, config_files: list[str]) -> str:
    """One line for the config's schema error that ``error`` (Snakemake's WorkflowError from
    ``snakemake.utils.validate``) carries: the config file holding the key, the key path, the
    problem, and for an unknown key the nearest valid one. ``error`` itself, said in one line,
    when it carries no schema error."""
    from jsonschema.exceptions import ValidationError, best_match

    found = error  # Snakemake raises its WorkflowError while handling jsonschema's error
    while found is not None and not isinstance(found, ValidationError):
        found = found.__cause__ or found.__context__
    if found is None:
        return " ".join(str(error).split())
    # A value that fits none of a key's forms (a dtype: a name or a list of names): the error
    # of the form it comes nearest, not "is not valid under any of the given schemas".
    found = best_match([found])
    path = list(found.absolute_path)
    if found.validator == "additionalProperties":
        allowed = list(found.schema.get("properties", {}))
        unknown = [key for key in found.instance if key not in allowed]
        path.append(unknown[0])
        nearest = difflib.get_close_matches(str(unknown[0]), allowed, n=1)
        problem = "unknown key; " + (
            f"did you mean {nearest[0]}?" if nearest else f"allowed here: {', '.join(allowed)}"
        )
    else:
        if "propertyNames" in found.schema_path:  # a name of a model or dataset
            path.append(found.instance)
        problem = _shortened(found.message)
    return f"{_file_holding(path, config_files)}, key {_key_path(path)}: {problem}"


def _key_path(path: list) -> str:
    """datasets.cola.glue_tsak, models.m.datasets[0]."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "(top level)"


def _file_holding(path: list, config_files: list[str]) -> str:
    """The config file that holds ``path`` (of several, the last: it wins), else the command
    line (--config)."""
    for config_file in reversed(config_files):
        try:
            data = read_config_file(config_file)
        except ConfigFileError:
            continue
        for part in path:
            if isinstance(data, dict | list) and _has(data, part):
                data = data[part]
            else:
                break
        else:
            return f"config file {config_file}"
    return "config given on the command line (--config)"


def _has(data, part) -> bool:
    if isinstance(data, dict):
        return part in data
    return isinstance(part, int) and 0 <= part < len(data)


def _shortened(message: str, limit: int = 200) -> str:
    message = " ".join(message.split())
    return message if len(message) <= limit else message[: limit - 3] + "..."
