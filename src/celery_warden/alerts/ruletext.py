"""Reading a rules file's text: YAML or TOML into rule items that remember their lines.

Why not ``yaml.safe_load`` / ``tomllib.loads`` alone: a rule that fails its check must be
reported with the line it is on, and the parsed data has no lines. YAML is read node by node
(every node carries its mark); TOML's ``[[rules]]`` headers and ``key =`` lines are found in the
text beside ``tomllib``'s result.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from typing import Any

import yaml

from celery_warden.errors import WardenError


class RuleError(WardenError, ValueError):
    """A rules file cannot be used; ``line`` is 1-based (``None`` when the file is unreadable)."""

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        self.path, self.line, self.reason = path, line, reason
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {reason}")


@dataclasses.dataclass(slots=True)
class Item:
    """One rule as read from the file, with the line of the item and of each key."""

    data: dict[str, Any]
    line: int
    key_lines: dict[str, int]


def yaml_items(path: str, text: str) -> list[Item]:
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return []
        if isinstance(root, yaml.MappingNode):
            found = [v for k, v in root.value if loader.construct_object(k) == "rules"]
            if not found:
                raise RuleError(path, root.start_mark.line + 1, "expected a 'rules' list")
            root = found[0]
        if not isinstance(root, yaml.SequenceNode):
            raise RuleError(path, root.start_mark.line + 1, "'rules' must be a list of rules")
        items = []
        for node in root.value:
            line = node.start_mark.line + 1
            if not isinstance(node, yaml.MappingNode):
                raise RuleError(path, line, "each rule must be a mapping of fields")
            data: dict[str, Any] = {}
            lines: dict[str, int] = {}
            for key_node, value_node in node.value:
                key = str(loader.construct_object(key_node))
                lines[key] = key_node.start_mark.line + 1
                data[key] = loader.construct_object(value_node, deep=True)
            items.append(Item(data, line, lines))
        return items
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = f"invalid YAML: {exc.problem or exc.context}"
        raise RuleError(path, mark.line + 1 if mark else None, reason) from None
    finally:
        loader.dispose()


def toml_items(path: str, text: str) -> list[Item]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"at line (\d+)", str(exc))
        raise RuleError(path, int(match.group(1)) if match else None,
                        f"invalid TOML: {exc}") from None
    rules = data.get("rules", [])
    if not isinstance(rules, list):
        raise RuleError(path, _first_line(text, r"rules\s*="), "'rules' must be a list")
    lines = text.splitlines()
    headers = [i + 1 for i, ln in enumerate(lines) if re.match(r"^\s*\[\[\s*rules\s*\]\]", ln)]
    fallback = _first_line(text, r"rules\s*=") or 1
    items = []
    for i, rule in enumerate(rules):
        start = headers[i] if len(headers) == len(rules) else fallback
        end = headers[i + 1] - 1 if len(headers) == len(rules) and i + 1 < len(headers) \
            else len(lines)
        key_lines: dict[str, int] = {}
        for n in range(start, end + 1):
            m = re.match(r"^\s*(?:\[\s*rules\.)?([A-Za-z_]+)\s*(?:=|\])", lines[n - 1])
            if m and m.group(1) not in key_lines:
                key_lines[m.group(1)] = n
        if not isinstance(rule, dict):
            raise RuleError(path, start, "each rule must be a table of fields")
        items.append(Item(rule, start, key_lines))
    return items


def _first_line(text: str, pattern: str) -> int | None:
    for i, line in enumerate(text.splitlines()):
        if re.match(r"^\s*" + pattern, line):
            return i + 1
    return None



__all__ = ["Item", "RuleError", "toml_items", "yaml_items"]
