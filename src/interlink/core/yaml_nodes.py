"""YAML nodes that remember where they came from: the reading half of spec files.

The provider catalogue (:mod:`interlink.connections.catalogue`) and the connector specs
(:mod:`interlink.connectors.spec`) compose YAML into nodes first, which keep their file and line,
then validate the constructed values with pydantic and walk each error location back down the
nodes (:func:`locate`), so every problem names ``file:line`` and the field.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from interlink.core.jsoncheck import find_unstorable

M = TypeVar("M", bound=BaseModel)

Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml when available (25 times faster); nodes keep their file name and line either way."""


class NamedText(io.StringIO):
    """Text with a ``name``, which YAML marks (and so every error) carry."""

    def __init__(self, text: str, name: str) -> None:
        super().__init__(text)
        self.name = name


def where(node: yaml.Node) -> str:
    return f"{node.start_mark.name}:{node.start_mark.line + 1}"


def scalar(node: yaml.Node) -> str:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else ""


def child(mapping: yaml.MappingNode, name: str) -> yaml.Node | None:
    for key_node, value_node in mapping.value:
        if scalar(key_node) == name:
            found: yaml.Node = value_node
            return found
    return None


def check_duplicate_keys(node: yaml.Node, problems: list[str]) -> None:
    """YAML loaders keep the last of two equal keys silently; spec files refuse them."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            name = scalar(key_node)
            if name in seen:
                problems.append(
                    f"{where(key_node)}: field {name!r} appears twice in one mapping (first at line "
                    f"{seen[name].start_mark.line + 1})"
                )
            else:
                seen[name] = key_node
            check_duplicate_keys(value_node, problems)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            check_duplicate_keys(item, problems)


def merge_nodes(base: yaml.Node, override: yaml.Node) -> yaml.Node:
    """Deep merge of two mapping nodes (the override's nodes keep their own file and line)."""
    if not (isinstance(base, yaml.MappingNode) and isinstance(override, yaml.MappingNode)):
        return override
    values: list[tuple[yaml.Node, yaml.Node]] = []
    overridden = {scalar(k): (k, v) for k, v in override.value}
    for key_node, value_node in base.value:
        name = scalar(key_node)
        if name in overridden:
            new_key, new_value = overridden.pop(name)
            values.append((new_key, merge_nodes(value_node, new_value)))
        else:
            values.append((key_node, value_node))
    values.extend(overridden.values())
    return yaml.MappingNode(override.tag, values, override.start_mark, override.end_mark, override.flow_style)


def construct(node: yaml.Node) -> Any:
    loader = Loader("")
    try:
        return loader.construct_document(node)
    finally:
        loader.dispose()


def locate(node: yaml.Node, loc: Iterable[int | str]) -> tuple[yaml.Node, str]:
    """The deepest node on ``loc`` that exists, and the dotted field path (snake_case)."""
    parts: list[str] = []
    current = node
    found = True
    for step in loc:
        name = str(step)
        if isinstance(step, int):
            parts.append(f"[{step}]")
        else:
            parts.append(f".{name}" if parts else name)
        if not found:
            continue
        nxt: yaml.Node | None = None
        if isinstance(current, yaml.MappingNode):
            for key_node, value_node in current.value:
                if scalar(key_node) == name:
                    nxt = value_node
                    break
        elif isinstance(current, yaml.SequenceNode) and isinstance(step, int) and step < len(current.value):
            nxt = current.value[step]
        if nxt is None:
            found = False
        else:
            current = nxt
    return current, "".join(parts)


def read_keyed_entries(path: Path, noun: str, problems: list[str]) -> list[tuple[str, yaml.MappingNode]]:
    """The entries of a spec file ``{version: 1, <noun>s: [{key: ..., ...}, ...]}``, each with its
    key, as nodes. Problems (unreadable file, YAML syntax, duplicate fields, unknown top-level
    fields, a wrong version, entries without a key, duplicate keys) are appended as
    ``file:line: message``; entries with a problem are left out."""
    plural = f"{noun}s"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: cannot read the {noun} file: {exc}")
        return []
    loader = Loader(NamedText(text, str(path)))
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problems.append(f"{path}{line}: not valid YAML: {exc.problem or exc}")
        return []
    except yaml.YAMLError as exc:
        problems.append(f"{path}: not valid YAML: {exc}")
        return []
    finally:
        loader.dispose()
    if root is None:
        problems.append(f"{path}:1: empty file; expected `{plural}:` with a list of {plural}")
        return []
    if not isinstance(root, yaml.MappingNode):
        problems.append(f"{where(root)}: expected a mapping with `{plural}:` (a list of {plural})")
        return []
    before = len(problems)
    check_duplicate_keys(root, problems)
    if len(problems) > before:
        return []
    top = {scalar(k): (k, v) for k, v in root.value}
    for name, (key_node, _) in top.items():
        if name not in ("version", plural):
            problems.append(
                f"{where(key_node)}: unknown top-level field {name!r} (expected version, {plural})"
            )
    if "version" in top and scalar(top["version"][1]) != "1":
        problems.append(f"{where(top['version'][1])}: version must be 1")
    if plural not in top:
        problems.append(f"{where(root)}: missing field {plural!r} (a list of {plural})")
        return []
    seq = top[plural][1]
    if isinstance(seq, yaml.ScalarNode) and seq.tag == "tag:yaml.org,2002:null":
        return []
    if not isinstance(seq, yaml.SequenceNode):
        problems.append(f"{where(seq)}: {plural} must be a list of {plural}")
        return []
    entries: list[tuple[str, yaml.MappingNode]] = []
    first_seen: dict[str, yaml.Node] = {}
    for item in seq.value:
        if not isinstance(item, yaml.MappingNode):
            problems.append(f"{where(item)}: each {noun} must be a mapping (key: ..., name: ...)")
            continue
        key_value = child(item, "key")
        if key_value is None:
            problems.append(f"{where(item)}: {noun} without a key: missing field 'key'")
            continue
        if not isinstance(key_value, yaml.ScalarNode) or not key_value.value:
            problems.append(f"{where(key_value)}: field 'key' must be a text like 'stripe'")
            continue
        key = str(key_value.value)
        if key in first_seen:
            problems.append(
                f"{where(key_value)}: duplicate {noun} key {key!r} (first at line "
                f"{first_seen[key].start_mark.line + 1})"
            )
            continue
        first_seen[key] = key_value
        entries.append((key, item))
    return entries


def validate_entry(model: type[M], key: str, node: yaml.Node, noun: str, problems: list[str]) -> M | None:
    """``node`` constructed and validated as ``model``; each pydantic error is appended as
    ``file:line: <noun> 'key': dotted.field: message`` at the deepest node it names."""
    try:
        data = construct(node)
    except yaml.YAMLError as exc:
        problems.append(f"{where(node)}: {noun} {key!r}: {exc}")
        return None
    unstorable = find_unstorable(data)
    if unstorable is not None:
        # PostgreSQL stores no NUL and JSON has no NaN or Infinity: refuse them here, on every
        # database, instead of failing (or silently turning .inf into null) when serving or syncing.
        dotted, what = unstorable
        steps = [int(p) if p.isdigit() else p for p in dotted.split(".")] if dotted else []
        at, _ = locate(node, steps)
        problems.append(f"{where(at)}: {noun} {key!r}: {dotted or f'({noun})'}: {what}")
        return None
    try:
        return model.model_validate(data, by_alias=False, by_name=True)
    except ValidationError as exc:
        for error in exc.errors():
            at, dotted = locate(node, error["loc"])
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["type"] == "missing":
                message = "missing field"
            elif error["type"] == "extra_forbidden":
                message = "unknown field"
            elif error["type"] == "enum" and "expected" in error.get("ctx", {}):
                message = f"{error.get('input')!r} is not one of {error['ctx']['expected']}"
            elif error["type"] == "literal_error":
                message = f"{error.get('input')!r}: {message}"
            problems.append(f"{where(at)}: {noun} {key!r}: {dotted or f'({noun})'}: {message}")
        return None
