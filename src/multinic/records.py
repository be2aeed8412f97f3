"""``typing``'s class-building names for the plugin import path, without ``typing``.

``typing`` costs about 2.5 ms of every plugin process (Python 3.11), and the
plugin path used it only to build classes: ``class X(NamedTuple)``, generic
classes (``Generic``, ``TypeVar``) and one ``Protocol``. Type checkers see
``typing``'s own names (``TYPE_CHECKING`` is true for them; mypy honours a name
whatever module re-exports it), so checking is exactly as with ``typing``. At
run time:

* ``NamedTuple``: the class statement goes through the same steps as
  ``typing.NamedTuple``'s (a ``collections.namedtuple`` with the annotated
  fields and their defaults, then the class body's methods and docstring), so
  the classes behave the same. Only the class form is provided.
* ``Generic``: a plain base; subscripting it or any subclass (``Generic[K]``,
  ``Pool[int]``) gives the class itself, so generic classes are ordinary
  classes (no ``__orig_bases__``/``__parameters__``, nothing to introspect).
* ``TypeVar``: a named placeholder, only ever passed to ``Generic[...]``.
* ``Protocol``: a plain base; structural checks are the type checker's alone
  (no ``runtime_checkable``: ``isinstance`` sees ordinary subclassing only).

Modules on the plugin path write::

    from multinic.records import TYPE_CHECKING, NamedTuple

    if TYPE_CHECKING:
        from typing import Any

With ``from __future__ import annotations`` annotations are never evaluated, so
names used only in them (``Any``, ``NoReturn``, aliases) stay under
``TYPE_CHECKING``.
"""

from __future__ import annotations

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Generic as Generic
    from typing import NamedTuple as NamedTuple
    from typing import Protocol as Protocol
    from typing import TypeVar as TypeVar
else:
    from collections import namedtuple as _namedtuple

    #: What a record class body may not redefine, and what it does not copy (as typing).
    _PROHIBITED = frozenset(
        {
            "__new__",
            "__init__",
            "__slots__",
            "__getnewargs__",
            "_fields",
            "_field_defaults",
            "_make",
            "_replace",
            "_asdict",
            "_source",
        }
    )
    _SPECIAL = frozenset({"__module__", "__name__", "__annotations__"})

    class _RecordMeta(type):
        """Turns a ``class X(NamedTuple)`` statement into a namedtuple class."""

        def __new__(cls, typename, bases, ns):
            if len(bases) != 1:
                raise TypeError("can only inherit from a NamedTuple type")
            fields = ns.get("__annotations__", {})
            defaults = []
            for name in fields:
                if name in ns:
                    defaults.append(ns[name])
                elif defaults:
                    raise TypeError(
                        f"Non-default namedtuple field {name} cannot follow default field(s)"
                    )
            record = _namedtuple(typename, fields, defaults=defaults, module=ns["__module__"])
            record.__annotations__ = record.__new__.__annotations__ = dict(fields)
            for key, value in ns.items():
                if key in _PROHIBITED:
                    raise AttributeError("Cannot overwrite NamedTuple attribute " + key)
                if key not in _SPECIAL and key not in record._fields:
                    setattr(record, key, value)
            return record

    _Record = type.__new__(_RecordMeta, "NamedTuple", (), {})

    class _NamedTupleBase:
        """``NamedTuple`` as a base class: it stands for the metaclass above."""

        def __mro_entries__(self, bases):
            return (_Record,)

        def __repr__(self):
            return "multinic.records.NamedTuple"

    NamedTuple = _NamedTupleBase()

    class Generic:
        """A generic class's base: subscripting the class gives the class itself."""

        __slots__ = ()

        def __class_getitem__(cls, params):
            return cls

    class TypeVar:
        """A type variable's name; bounds, constraints and variance are the checker's."""

        __slots__ = ("__name__",)

        def __init__(self, name, *_constraints, **_bound_and_variance):
            # typing.TypeVar's arguments are accepted and left to the type checker.
            self.__name__ = name

        def __repr__(self):
            return "~" + self.__name__

    class Protocol:
        """A protocol's base: an ordinary class; conformance is the type checker's."""

        __slots__ = ()
