"""jail.record behaves as dataclasses does for every declaration the jail makes: each case
declares the same class both ways and compares what they do."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import subprocess
import sys

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


@pytest.mark.parametrize("flags", FLAGS, ids=lambda f: "-".join(f) or "plain")
def test_a_record_does_what_the_same_dataclass_does(flags: dict[str, bool]) -> None:
    ours = declare(record.record, record.field, **flags)
    theirs = declare(dataclasses.dataclass, dataclasses.field, **flags)
    calls = [((3,), {}), ((3, 2.0), {}), ((), {"x": 3, "name": "a"}), ((3,), {"tags": ["t"], "y": 0.5})]
    for args, kwargs in calls:
        a, b = ours(*args, **kwargs), theirs(*args, **kwargs)
        assert repr(a) == repr(b)
        assert a == ours(*args, **kwargs) and a != ours(4) and a != b  # another class is never equal
        assert a.norm() == b.norm()
        assert record.asdict(a) == dataclasses.asdict(b)
        assert repr(record.replace(a, x=9)) == repr(dataclasses.replace(b, x=9))
        assert record.replace(a, x=9).tags is a.tags  # as dataclasses.replace: the values, not copies
        assert copy.deepcopy(a) == a
    assert record.fields(ours) == tuple(f.name for f in dataclasses.fields(theirs))
    assert ours(1).tags is not ours(1).tags  # a factory's default is made for each instance
    assert hasattr(ours(1), "__dict__") == hasattr(theirs(1), "__dict__")
    assert (ours.__hash__ is None) == (theirs.__hash__ is None)
    if flags.get("frozen"):
        assert hash(ours(1, tags=())) == hash(ours(1, tags=()))
        for obj in (ours(1), theirs(1)):
            with pytest.raises(AttributeError):
                obj.x = 2
            with pytest.raises(AttributeError):
                del obj.x
        with pytest.raises(FrozenInstanceError, match="'x'"):
            ours(1).x = 2
    else:
        a = ours(1)
        a.x = 2
        assert a == ours(2)
    for bad_args, bad_kwargs in [((), {}), ((1, 2.0, [], None, 5), {}), ((1,), {"x": 2}), ((1,), {"z": 2})]:
        with pytest.raises(TypeError):
            theirs(*bad_args, **bad_kwargs)
        with pytest.raises(TypeError):
            ours(*bad_args, **bad_kwargs)
    with pytest.raises(TypeError, match="'z'"):
        record.replace(ours(1), z=1)


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

    with pytest.raises(TypeError, match="not a record"):
        record.fields(object())


def test_the_jail_never_imports_dataclasses() -> None:
    """What records are for: the command line's imports leave dataclasses (and inspect) out."""
    modules = ["dataclasses", "inspect"]
    code = f"import sys, jail.cli, jail.runner, jail.zygote; print(*(m in sys.modules for m in {modules!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
