"""YAML loading that remembers where every value came from, so errors can name a line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

PathKey = tuple[str | int, ...]


class YamlSyntaxError(ValueError):
    """The file is not valid YAML; ``line`` is 1-based."""

    def __init__(self, file: str, line: int, message: str) -> None:
        super().__init__(f"{file}:{line}: {message}")
        self.file, self.line, self.message = file, line, message


def _walk(node: yaml.Node, path: PathKey, lines: dict[PathKey, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*path, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), lines)


def load_with_lines(text: str, file: str = "<config>") -> tuple[Any, dict[PathKey, int]]:
    """Parse YAML text; return the data and a map from key path to 1-based line number."""
    loader = yaml.SafeLoader
    try:
        node = yaml.compose(text, Loader=loader)
        data = yaml.load(text, Loader=loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise YamlSyntaxError(file, line, f"invalid YAML: {exc.problem or exc}") from None
    lines: dict[PathKey, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return data, lines


def line_for(lines: dict[PathKey, int], path: PathKey) -> int:
    """The line of the deepest prefix of ``path`` that the file spells out."""
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return 1


def read_text(path: Path) -> str:
    """Read a config file, turning OS errors into one clear message."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise YamlSyntaxError(str(path), 0, f"cannot read file: {exc.strerror or exc}") from None
