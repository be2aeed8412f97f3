"""multinic.records: NamedTuple builds the same classes as typing.NamedTuple, and the
run-time Generic, TypeVar and Protocol make ordinary classes of what uses them."""

from __future__ import annotations

import abc
import typing
from collections.abc import Hashable

import pytest

from multinic.records import Generic, NamedTuple, Protocol, TypeVar


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


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Box(Generic[K]):
    """A generic class as allocator._Pool is one."""

    def __init__(self, item: K) -> None:
        self.item = item


class Holder(abc.ABC, Generic[K, V]):
    """An abstract generic base as allocator._Allocator is one."""

    @abc.abstractmethod
    def value(self, key: K) -> V:
        """The value for ``key``."""

    def values(self, keys: list[K]) -> list[V]:
        return [self.value(k) for k in keys]


class Lengths(Holder[str, int]):
    def value(self, key: str) -> int:
        return len(key)


def test_the_run_time_names_are_not_typings() -> None:
    # These tests run the stand-ins: under TYPE_CHECKING only, the names are typing's.
    assert Generic is not typing.Generic and Protocol is not typing.Protocol
    assert TypeVar is not typing.TypeVar
    assert Generic.__module__ == Protocol.__module__ == TypeVar.__module__ == "multinic.records"


def test_a_type_variable_is_a_named_placeholder() -> None:
    assert K.__name__ == "K" and repr(V) == "~V"
    constrained = TypeVar("T", int, str, covariant=True)
    assert constrained.__name__ == "T"


def test_subscripting_a_generic_class_gives_the_class() -> None:
    assert Box[int] is Box and Holder[str, int] is Holder and Generic[K] is Generic
    box = Box[int](3)
    assert type(box) is Box and box.item == 3 and isinstance(box, Box)
    assert Box.__mro__ == (Box, Generic, object)


def test_a_generic_abc_keeps_abstract_methods_abstract() -> None:
    assert Lengths.__mro__ == (Lengths, Holder, abc.ABC, Generic, object)
    with pytest.raises(TypeError, match="abstract"):
        Holder()  # type: ignore[abstract]
    lengths = Lengths()
    assert lengths.values(["a", "abc"]) == [1, 3]
    assert isinstance(lengths, Holder) and isinstance(lengths, abc.ABC)
    assert not isinstance(Box(1), Holder)


def test_a_protocol_is_an_ordinary_base_class() -> None:
    class Closer(Protocol):
        def close(self) -> None:
            """Release what is held."""
            ...

    class Explicit(Closer):
        def close(self) -> None:
            pass

    class Structural:
        def close(self) -> None:
            pass

    assert Closer.__mro__ == (Closer, Protocol, object)
    assert isinstance(Explicit(), Closer) and issubclass(Explicit, Closer)
    # No run-time structural check: only subclasses are instances (typing would refuse
    # isinstance on a protocol that is not runtime_checkable).
    assert not isinstance(Structural(), Closer)
