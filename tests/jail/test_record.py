"""jail.record behaves as dataclasses does for every declaration the jail makes: each case
declares the same class both ways and compares what they do."""

from __future__ import annotations

import copy
import dataclasses
import functools
import pickle
import subprocess
import sys
from typing import ClassVar

import pytest

from jail import record
from jail.record import FrozenInstanceError


def declare(make, field, **flags):  # type: ignore[no-untyped-def]
    """The same class, made by `make` (dataclass or record) with `flags`."""

    class Point:
        """A value with every kind of field."""

        x: int
        y: float = 1.5
        tags: list[str] = field(default_factory=list)
        name: str | None = None

        def norm(self) -> float:
            return abs(self.x) + abs(self.y)

    Point.__qualname__ = "Point"  # pickle finds it as this module's Point below
    return make(**flags)(Point)


FLAGS = [{}, {"frozen": True}, {"slots": True}, {"frozen": True, "slots": True}]


def message(call) -> str:  # type: ignore[no-untyped-def]
    """The TypeError a bad call raises, without the class's name (dataclasses' has its qualname)."""
    with pytest.raises(TypeError) as caught:
        call()
    text = str(caught.value)
    return text[text.index("(") :] if "(" in text else text


@pytest.mark.parametrize("flags", FLAGS, ids=lambda f: "-".join(f) or "plain")
def test_a_record_does_what_the_same_dataclass_does(flags: dict[str, bool]) -> None:
    ours = declare(record.record, record.field, **flags)
    theirs = declare(dataclasses.dataclass, dataclasses.field, **flags)
    calls = [((3,), {}), ((3, 2.0), {}), ((), {"x": 3, "name": "a"}), ((3,), {"tags": ["t"], "y": 0.5})]
    for args, kwargs in calls:
        a, b = ours(*args, **kwargs), theirs(*args, **kwargs)
        assert repr(a) == repr(b)
        assert a == ours(*args, **kwargs) and a != b  # another class is never equal
        for name, other in (("x", 4), ("y", -1.0), ("tags", ["u"]), ("name", "z")):  # each field counts
            assert a != record.replace(a, **{name: other})
            assert (b == dataclasses.replace(b, **{name: other})) is False
        assert a.norm() == b.norm()
        assert record.asdict(a) == dataclasses.asdict(b)
        assert record.asdict(a)["tags"] is not a.tags  # copies, as dataclasses.asdict makes
        assert repr(record.replace(a, x=9)) == repr(dataclasses.replace(b, x=9))
        assert record.replace(a, x=9).tags is a.tags  # as dataclasses.replace: the values, not copies
        copied = copy.deepcopy(a)
        assert copied == a and copied is not a and copied.tags is not a.tags
    assert record.fields(ours) == tuple(f.name for f in dataclasses.fields(theirs))
    assert ours(1).tags is not ours(1).tags  # a factory's default is made for each instance
    assert hasattr(ours(1), "__dict__") == hasattr(theirs(1), "__dict__")
    assert (ours.__hash__ is None) == (theirs.__hash__ is None)
    if flags.get("frozen"):
        assert hash(ours(1, tags=())) == hash(ours(1, tags=())) == hash(theirs(1, tags=()))
        assert len({hash(ours(x, tags=())) for x in range(100)}) == 100
        for obj in (ours(1), theirs(1)):
            with pytest.raises(AttributeError):
                obj.x = 2
            with pytest.raises(AttributeError):
                del obj.x
        with pytest.raises(FrozenInstanceError, match="'x'"):
            ours(1).x = 2
        with pytest.raises(FrozenInstanceError, match="'x'"):
            del ours(1).x
    else:
        a = ours(1)
        a.x = 2
        assert a == ours(2)
    for bad_args, bad_kwargs in [((), {}), ((1, 2.0, [], None, 5), {}), ((1,), {"x": 2}), ((1,), {"z": 2})]:
        ours_says = message(functools.partial(ours, *bad_args, **bad_kwargs))
        theirs_says = message(functools.partial(theirs, *bad_args, **bad_kwargs))
        for word in ("'x'", "'z'", "takes", "multiple", "missing", "unexpected"):  # what the caller must learn
            assert (word in ours_says) == (word in theirs_says), (ours_says, theirs_says)
    with pytest.raises(TypeError, match="'z'"):
        record.replace(ours(1), z=1)


def test_records_within_records_and_a_record_of_one_field() -> None:
    @record.record(frozen=True, slots=True)
    class One:
        value: float

    @record.record
    class Outer:
        inner: One
        many: list[One] = record.field(default_factory=list)
        by_key: dict[str, One] = record.field(default_factory=dict)

    nan = float("nan")
    assert One(nan) == One(nan)  # one object: equal, as in the tuples a dataclass compares
    assert hash(One(2.0)) == hash((2.0,))
    outer = Outer(One(1.0), [One(2.0)], {"k": One(3.0)})
    assert record.asdict(outer) == {"inner": {"value": 1.0}, "many": [{"value": 2.0}], "by_key": {"k": {"value": 3.0}}}
    assert "test_records_within_records_and_a_record_of_one_field.<locals>.One(value=1.0)" in repr(outer)


def test_what_the_class_body_says_is_kept() -> None:
    @record.record(frozen=True, slots=True)
    class Own:
        a: int

        def __repr__(self) -> str:
            return "own"

    @record.record(frozen=True)
    class Base:
        a: int = 1

    class Plain(Base):
        pass

    assert repr(Own(1)) == "own" and Own(1) == Own(1)
    extended = Plain()
    extended.extra = 2  # a plain subclass's own attribute, as a dataclass's subclass allows
    with pytest.raises(FrozenInstanceError):
        extended.a = 2


@pytest.mark.parametrize("flags", FLAGS, ids=lambda f: "-".join(f) or "plain")
def test_a_record_pickles(flags: dict[str, bool]) -> None:
    global Point
    Point = declare(record.record, record.field, **flags)
    try:
        a = Point(3, tags=["t"])
        for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
            assert pickle.loads(pickle.dumps(a, protocol)) == a
    finally:
        del Point


def test_declarations_dataclasses_refuses_are_refused() -> None:
    with pytest.raises(TypeError, match="'y' without a default"):

        @record.record
        class Gap:
            x: int = 1
            y: int

    with pytest.raises(TypeError, match="mutable default"):

        @record.record
        class Shared:
            x: list[int] = []

    @record.record
    class Base:
        x: int = 1

    with pytest.raises(TypeError, match="base record"):

        @record.record
        class Derived(Base):
            y: int = 2

    with pytest.raises(TypeError, match="ClassVar"):

        @record.record
        class Constant:
            x: ClassVar[int] = 1

    with pytest.raises(TypeError, match="__setattr__"):

        @record.record(frozen=True)
        class Guarded:
            x: int = 1

            def __setattr__(self, name: str, value: object) -> None:
                pass

    with pytest.raises(TypeError, match="not a record"):
        record.fields(object())


def test_the_jail_never_imports_dataclasses_or_typing() -> None:
    """What records are for: the command line's imports leave dataclasses (with inspect) and
    typing out; the jail's Protocols are for type checkers only."""
    modules = ["dataclasses", "inspect", "typing"]
    code = f"import sys, jail.cli, jail.runner, jail.zygote; print(*(m in sys.modules for m in {modules!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "False"]
