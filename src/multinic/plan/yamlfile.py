"""Reading the planner's YAML input: UTF-8 only, no duplicate keys, errors with a line.

PyYAML keeps the last of two equal keys silently, so ``pod:`` written twice
under ``blocks`` planned the second block without a word: a typo in a copied
line must be an error, as an unknown field is.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from multinic.plan.errors import FabricError

MERGE_TAG = "tag:yaml.org,2002:merge"


def read_text(path: Path) -> str:
    """The file as text; a file that is not UTF-8 is a FabricError naming the byte."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FabricError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise FabricError(
            f"{path}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); save the file as UTF-8"
        ) from exc


def load(text: str, path: Path) -> Any:
    """One YAML document with a safe loader that refuses duplicate keys."""
    import yaml  # the CLI's --help must not pay for PyYAML

    try:
        return yaml.load(text, Loader=_strict_loader())  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise FabricError(f"{path}: not valid YAML: {exc}") from exc
    except RecursionError as exc:
        raise FabricError(f"{path}: nested too deeply to be a fabric file") from exc


@functools.cache  # one class, built on first use (PyYAML loads lazily)
def _strict_loader() -> Any:
    import yaml

    # libyaml's parser when PyYAML was built with it (ten times faster); the
    # constructor, where duplicates are checked, is Python in both.
    base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class StrictLoader(base):  # type: ignore[misc]
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                _refuse_duplicates(self, node)
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


def _refuse_duplicates(loader: Any, node: Any) -> None:
    import yaml

    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        if key_node.tag == MERGE_TAG:  # `<<: *anchor` may be overridden on purpose
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.setdefault(key, key_node.start_mark)
        except TypeError:  # unhashable: the base constructor says so
            continue
        if first is not key_node.start_mark:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping",
                node.start_mark,
                f"found the key {key!r} twice (first on line {first.line + 1})",
                key_node.start_mark,
            )
