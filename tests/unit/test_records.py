"""afk.records.dataclass behaves as dataclasses.dataclass for every option afk uses:
each case builds the same class with both and compares what a caller can observe."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from dataclasses import field
from decimal import Decimal
from typing import Any

import pytest

from afk import records

OPTIONS = [{}, {"slots": True}, {"slots": True, "kw_only": True}, {"frozen": True},
           {"frozen": True, "slots": True}, {"frozen": True, "slots": True, "kw_only": True}]


def _twins(**options: Any) -> tuple[Any, Any]:
    def build(decorate: Any) -> Any:
        class Call:
            id: str
            name: str
            tags: list[str] = field(default_factory=list)
            note: str | None = None
            size: int = field(default=0, kw_only=True)

        Call.__qualname__ = "Call"
        return decorate(**options)(Call)

    return build(dataclasses.dataclass), build(records.dataclass)


@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_same_observable_behaviour(options: dict[str, bool]) -> None:
    stdlib, ours = _twins(**options)
    args: tuple[Any, ...] = () if options.get("kw_only") else ("c1", "fn")
    kwargs: dict[str, Any] = {"id": "c1", "name": "fn"} if options.get("kw_only") else {}
    a, b = stdlib(*args, **kwargs, size=3), ours(*args, **kwargs, size=3)
    assert repr(a) == repr(b) == "Call(id='c1', name='fn', tags=[], note=None, size=3)"
    assert b.tags == [] and b.tags is not ours(*args, **kwargs).tags  # a fresh factory value
    assert b == ours(*args, **kwargs, size=3) and b != ours(*args, **kwargs, size=4)
    assert b != a  # another class, as two dataclasses never compare equal
    assert dataclasses.asdict(b) == dataclasses.asdict(a)
    assert [f.name for f in dataclasses.fields(b)] == [f.name for f in dataclasses.fields(a)]
    assert dataclasses.replace(b, note="x").note == "x"
    assert ours.__match_args__ == stdlib.__match_args__
    assert hasattr(b, "__dict__") == hasattr(a, "__dict__")  # slots or not
    with pytest.raises(TypeError):
        ours() if options.get("kw_only") else ours("c1", "fn", [], None, 3)  # size: keyword only
    if options.get("frozen"):
        hashable = dataclasses.replace(b, tags=())  # type: ignore[arg-type]
        assert hash(hashable) == hash(dataclasses.replace(hashable))
        for act in (lambda: setattr(b, "id", "other"), lambda: delattr(b, "id")):
            with pytest.raises(dataclasses.FrozenInstanceError):
                act()
    else:
        assert ours.__hash__ is None is stdlib.__hash__
        b.id = "c2"
        assert b.id == "c2"
    assert copy.copy(b) == b == copy.deepcopy(b)


def test_pickles() -> None:
    """A frozen, slotted class (the catalog's) round-trips through pickle, as with
    dataclasses (its __getstate__/__setstate__)."""
    from afk.catalog.model import LongContext, Prices

    tier = LongContext(threshold=200_000, prices=Prices(input=Decimal(3), cached_input=Decimal("0.3"),
                                                            output=Decimal(15)))
    assert pickle.loads(pickle.dumps(tier)) == tier


def test_refuses_what_it_does_not_implement() -> None:
    class Custom:
        a: int

        def __eq__(self, other: object) -> bool:
            return True

    class Hidden:
        a: int = field(repr=False)

    for cls in (Custom, Hidden):
        with pytest.raises(TypeError, match="dataclasses.dataclass"):
            records.dataclass(cls)


def test_afk_types_are_built_by_it() -> None:
    """What the cold-start lever rests on: the IR's types come from afk.records
    (its `__init__` is the one compiled method; `__eq__` is a closure)."""
    from afk import ir

    assert ir.Text.__eq__.__module__ == "afk.records"
    assert ir.Text(text="a") == ir.Text(text="a") != ir.Text(text="b")


def test_init_is_compiled_at_the_first_instance_and_kept() -> None:
    """A class nobody instantiates never compiles its __init__; the first instance
    puts the compiled one (with the dataclass's signature) in place for every later one."""
    import inspect

    _, ours = _twins(slots=True, kw_only=True)
    placeholder = ours.__init__
    assert list(inspect.signature(placeholder).parameters) == ["self", "args", "kwargs"]
    first = ours(id="a", name="b")
    compiled = ours.__init__
    assert compiled is not placeholder
    parameters = inspect.signature(compiled).parameters
    assert list(parameters) == ["self", "id", "name", "tags", "note", "size"]
    assert {p.kind for name, p in parameters.items() if name != "self"} == {
        inspect.Parameter.KEYWORD_ONLY}
    assert ours(id="a", name="b") == first and ours.__init__ is compiled
    with pytest.raises(TypeError):
        ours("a", "b")  # still keyword-only through the compiled one
