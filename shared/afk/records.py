"""`dataclass`: `dataclasses.dataclass` at a quarter of the import cost.

Python 3.12 (Lambda's runtime) generates each method of a dataclass as source and
compiles it with its own `exec`: `__init__`, `__repr__`, `__eq__`, and for a
frozen class `__setattr__`, `__delattr__` and `__hash__`, ~0.1 ms each. The ~100
dataclasses a function imports (the IR, the catalog, the store's items, the
dialects) cost ~50-70 ms of its cold start that way (bench/LEVERS.md).

This `dataclass` lets `dataclasses` do the rest (fields, defaults, `__slots__`,
`__match_args__`; so `replace`, `fields` and `asdict` work as before) and adds
the same methods with the same semantics, compiling only `__init__`, which runs
for every instance, and only when the class is first instantiated; `__repr__`,
`__eq__`, `__hash__` and a frozen class's `__setattr__`/`__delattr__` are
closures over the field names. ~0.1 ms per class instead of ~0.6-1.0 ms (plus
~0.1 ms at the first instance of a class a process uses).

Type checkers see `dataclasses.dataclass` itself, so every static check on a
dataclass (frozen fields, keyword-only arguments, `replace`) applies unchanged.
Options: `frozen`, `slots`, `kw_only`; fields: `default`, `default_factory`,
`kw_only`. A class asking for more (a base class, its own `__eq__`,
`__post_init__`, `field(repr=False)`, ...) is refused at import: use `dataclasses.dataclass`.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

__all__ = ["dataclass"]

_HAS_FACTORY = object()  # an argument not given, whose default comes from a factory
_OWN = ("__init__", "__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__",
        "__post_init__")

if TYPE_CHECKING:
    from dataclasses import dataclass
else:
    def dataclass(cls: type | None = None, /, *, frozen: bool = False, slots: bool = False,
                  kw_only: bool = False) -> Any:
        def wrap(cls: type) -> type:
            return _build(cls, frozen=frozen, slots=slots, kw_only=kw_only)

        return wrap if cls is None else wrap(cls)


def _build(cls: type, *, frozen: bool, slots: bool, kw_only: bool) -> type:
    own = cls.__dict__
    if cls.__bases__ != (object,) or any(own.get(name) is not None for name in _OWN):
        raise TypeError(f"{cls.__qualname__} has a base class or its own dunder methods: "
                        "use dataclasses.dataclass")
    documented = own.get("__doc__") is not None
    if not documented:  # else dataclasses calls inspect.signature for one
        type.__setattr__(cls, "__doc__", "-")
    cls = dataclasses.dataclass(cls, init=False, repr=False, eq=False, slots=slots,
                                kw_only=kw_only)
    fields = dataclasses.fields(cls)
    if any(not (f.init and f.repr and f.compare) or f.hash is not None for f in fields):
        raise TypeError(f"{cls.__qualname__}: field options other than default, "
                        "default_factory and kw_only need dataclasses.dataclass")
    names = tuple(f.name for f in fields)
    if not documented:  # what dataclasses writes: the class's signature
        type.__setattr__(cls, "__doc__", f"{cls.__name__}({', '.join(names)})")
    methods = {"__init__": _first_init(cls, fields, frozen=frozen), **_compare(names)}
    if frozen:
        methods.update(_frozen(cls, frozenset(names)))
    for name, method in methods.items():
        method.__qualname__ = f"{cls.__qualname__}.{name}"
        type.__setattr__(cls, name, method)
    if not frozen:
        type.__setattr__(cls, "__hash__", None)  # eq without frozen: unhashable, as dataclasses
    elif slots:  # what dataclasses adds to a frozen slotted class, so copy and pickle work
        type.__setattr__(cls, "__getstate__", _getstate)
        type.__setattr__(cls, "__setstate__", _setstate)
    return cls


def _first_init(cls: type, fields: tuple[dataclasses.Field[Any], ...], *,
                frozen: bool) -> Callable[..., None]:
    """An `__init__` that compiles the real one when the class is first instantiated,
    puts it in its place and runs it: a class a process never instantiates (most of
    the IR's in one function) never pays for the compile."""

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init = _init(fields, frozen=frozen)
        init.__qualname__ = f"{cls.__qualname__}.__init__"
        type.__setattr__(cls, "__init__", init)
        init(self, *args, **kwargs)

    return __init__


def _init(fields: tuple[dataclasses.Field[Any], ...], *, frozen: bool) -> Callable[..., None]:
    """`__init__`, compiled (it runs for every instance): the one `exec` per class."""
    scope: dict[str, Any] = {"HAS_FACTORY": _HAS_FACTORY, "object_setattr": object.__setattr__}
    positional: list[str] = []
    keyword: list[str] = []
    body: list[str] = []
    for f in fields:
        param, value = f.name, f.name
        if f.default is not dataclasses.MISSING:
            scope[f"default_{f.name}"] = f.default
            param += f"=default_{f.name}"
        elif f.default_factory is not dataclasses.MISSING:
            scope[f"factory_{f.name}"] = f.default_factory
            param += "=HAS_FACTORY"
            value = f"factory_{f.name}() if {f.name} is HAS_FACTORY else {f.name}"
        (keyword if f.kw_only else positional).append(param)
        body.append(f"object_setattr(self, {f.name!r}, {value})" if frozen
                    else f"self.{f.name} = {value}")
    params = ", ".join(["self", *positional, *(["*", *keyword] if keyword else [])])
    exec("\n    ".join([f"def __init__({params}):", *(body or ["pass"])]), scope)
    init: Callable[..., None] = scope["__init__"]
    return init


def _compare(names: tuple[str, ...]) -> dict[str, Callable[..., Any]]:
    """`__repr__`, `__eq__` and `__hash__` (set only for a frozen class), over the
    fields in their order, as dataclasses writes them."""
    values: Callable[[Any], Any] = operator.attrgetter(*names) if names else (lambda _: ())

    def __repr__(self: Any) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{type(self).__qualname__}({shown})"

    def __eq__(self: Any, other: object) -> bool:
        if self is other:
            return True
        if other.__class__ is self.__class__:
            return bool(values(self) == values(other))
        return NotImplemented

    def __hash__(self: Any) -> int:
        return hash(values(self))

    return {"__repr__": __repr__, "__eq__": __eq__, "__hash__": __hash__}


def _frozen(cls: type, names: frozenset[str]) -> dict[str, Callable[..., None]]:
    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
        object.__setattr__(self, name, value)

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")
        object.__delattr__(self, name)

    return {"__setattr__": __setattr__, "__delattr__": __delattr__}


def _getstate(self: Any) -> list[Any]:
    return [getattr(self, f.name) for f in dataclasses.fields(self)]


def _setstate(self: Any, state: list[Any]) -> None:
    for f, value in zip(dataclasses.fields(self), state, strict=True):
        object.__setattr__(self, f.name, value)
