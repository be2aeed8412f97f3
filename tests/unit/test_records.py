"""multinic.records.NamedTuple builds the same classes as typing.NamedTuple."""

from __future__ import annotations

import typing

import pytest

from multinic.records import NamedTuple


def make(base: typing.Any) -> typing.Any:
    class Point(base):  # type: ignore[misc]
        """A point."""

        x: int
        y: int = 0
        label: str = ""

        def norm1(self) -> int:
            return abs(self.x) + abs(self.y)

        @property
        def origin(self) -> bool:
            return not (self.x or self.y)

        def __bool__(self) -> bool:
            return bool(self.label)

    return Point


def test_the_class_matches_typing_named_tuple() -> None:
    ours, theirs = make(NamedTuple), make(typing.NamedTuple)
    classes: list[typing.Any] = [ours, theirs]
    for cls in classes:
        p = cls(3, -4)
        assert p == (3, -4, "") and isinstance(cls(1), tuple)
        assert cls._fields == ("x", "y", "label")
        assert cls._field_defaults == {"y": 0, "label": ""}
        assert p.norm1() == 7 and not p.origin and not p and cls(0, label="o")
        assert p._replace(y=1) == (3, 1, "") and p._asdict()["x"] == 3
        assert repr(p) == "Point(x=3, y=-4, label='')"
        assert cls.__doc__ == "A point." and cls.__module__ == __name__
        assert cls.__mro__[1:] == (tuple, object)
    assert ours.__qualname__ == theirs.__qualname__
    assert list(ours.__annotations__) == list(theirs.__annotations__)


def test_a_field_without_default_after_one_with_is_refused() -> None:
    with pytest.raises(TypeError, match="cannot follow default"):

        class Bad(NamedTuple):
            a: int = 1
            b: int  # type: ignore[misc]


def test_namedtuple_machinery_cannot_be_overridden() -> None:
    with pytest.raises(AttributeError, match="_replace"):

        class Bad(NamedTuple):
            a: int

            def _replace(self) -> None:  # type: ignore[misc]
                pass
