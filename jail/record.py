"""The jail's value types: declared as dataclasses are, made without compiling any code.

    @record(frozen=True, slots=True)
    class Limits:
        cpu_time: float = 2.0
        files: dict[str, bytes] = field(default_factory=dict)

`record` takes the same declaration and the same `frozen` and `slots` as `dataclasses.dataclass`
and gives the class what a dataclass gets by default: `__init__` (positional or by name, in
field order), `__repr__`, `__eq__`, and, frozen, `__hash__` and no assignment; methods the
class body defines are kept, as a dataclass keeps them. `replace` and `asdict` are
dataclasses' functions for records; `fields` gives the field names.

Use these, never dataclasses' own: `dataclasses.replace`, `fields` and `asdict` refuse a
record at run time, though mypy, which checks a record's calls as a dataclass's
(`dataclass_transform`), lets them pass. `replace`'s keywords are checked at run time only.

Why not dataclasses: it writes each method's source text and compiles it when the class is
made, and imports `inspect` (with `ast`, `dis` and `tokenize`) to do so; for the jail's
classes that was 86 M of the 210 M instructions `python -m jail run` executes to import what
it needs (load/bench_cli.py), some 20 ms of every command. A record's methods are the same
few functions for every class, reading the field names the decorator stored on it.

What records do not do (nothing in the jail needs it), refused where it could be mistaken:
inheriting fields from a base record, ClassVar or InitVar fields, keyword-only fields,
ordering, `__post_init__`, `__match_args__`.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from reprlib import recursive_repr

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (mypy reads it by name)
if TYPE_CHECKING:
    from typing import Any, TypeVar, dataclass_transform, overload

    C = TypeVar("C", bound=type)
    R = TypeVar("R")


class FrozenInstanceError(AttributeError):
    """An assignment to a field of a frozen record."""


class _Factory:
    """A field's default made anew for each instance (`field(default_factory=...)`)."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], object]) -> None:
        self.make = make


def field(*, default_factory: Callable[[], Any]) -> Any:
    """A field whose default is `default_factory()`, called for each instance that does not
    give the field (a list, a dict: one shared default would be every instance's)."""
    return _Factory(default_factory)


class _Layout:
    """What the shared methods need of one record class."""

    __slots__ = ("defaults", "known", "names", "slots", "values")

    def __init__(self, names: tuple[str, ...], defaults: dict[str, object], slots: bool) -> None:
        self.names = names
        self.slots = slots
        self.known = frozenset(names)
        self.defaults = defaults  # name -> its default, or a _Factory
        # The fields' values as a tuple (attrgetter of one name gives the bare value).
        self.values: Callable[[object], tuple[object, ...]]
        if len(names) > 1:
            self.values = attrgetter(*names)
        else:
            self.values = lambda obj: tuple(getattr(obj, name) for name in names)


if TYPE_CHECKING:  # how a type checker sees `record`: as dataclasses.dataclass

    @overload
    @dataclass_transform(field_specifiers=(field,))
    def record(cls: C, /) -> C: ...

    @overload
    def record(*, frozen: bool = False, slots: bool = False) -> Callable[[C], C]: ...


def record(cls: C | None = None, /, *, frozen: bool = False, slots: bool = False) -> C | Callable[[C], C]:
    """Make `cls` a record: its annotated attributes, in order, are its fields; a value
    assigned in the class body is that field's default."""

    def make(cls: C) -> C:
        return _make(cls, frozen, slots)

    return make if cls is None else make(cls)


def _make(cls: C, frozen: bool, slots: bool) -> C:
    where = cls.__qualname__
    if any(hasattr(base, "__record__") for base in cls.__mro__[1:]):
        raise TypeError(f"{where}: a record's fields cannot come from a base record")
    annotations = cls.__annotations__  # the class's own (Python >= 3.10), unevaluated under PEP 563/649
    names = tuple(annotations)
    defaults: dict[str, object] = {}
    for name in names:
        if str(annotations[name]).split("[")[0].split(".")[-1] in ("ClassVar", "InitVar"):
            raise TypeError(f"{where}: field {name!r}: a record has no ClassVar or InitVar fields")
        if name not in cls.__dict__:
            if defaults:
                raise TypeError(f"{where}: field {name!r} without a default follows one with a default")
            continue
        default = cls.__dict__[name]
        if not isinstance(default, _Factory) and type(default).__hash__ is None:  # as dataclasses refuses
            raise TypeError(f"{where}: field {name!r} has a mutable default: use field(default_factory=...)")
        defaults[name] = default
    own = cls.__dict__
    if frozen and ("__setattr__" in own or "__delattr__" in own):
        raise TypeError(f"{where}: a frozen record cannot define __setattr__ or __delattr__")
    generated = (("__init__", _init), ("__repr__", _repr), ("__eq__", _eq))
    methods: dict[str, object] = {name: method for name, method in generated if name not in own}  # as dataclasses
    methods["__record__"] = _Layout(names, defaults, slots)
    # Python sets __hash__ = None in a body that defines __eq__ alone: that is no hash of its own.
    own_hash = "__hash__" in own and not (own["__hash__"] is None and "__eq__" in own)
    if not own_hash:
        methods["__hash__"] = _hash if frozen else None
    if frozen:
        methods.update(__setattr__=_refuse_setattr, __delattr__=_refuse_delattr)
    if not slots:  # the class itself, its plain defaults left as class attributes (as a dataclass's)
        for name, value in methods.items():
            setattr(cls, name, value)
        for name, default in defaults.items():
            if isinstance(default, _Factory):
                delattr(cls, name)
        return cls
    # A class with __slots__ is a new class (as with dataclasses); pickled as a tuple of
    # values, set past a frozen class's __setattr__.
    body = {k: v for k, v in own.items() if k not in defaults and k not in ("__dict__", "__weakref__")}
    body.update(methods, __slots__=names, __qualname__=where, __getstate__=_getstate, __setstate__=_setstate)
    return type(cls)(cls.__name__, cls.__bases__, body)


def _init(self: Any, *args: object, **kwargs: object) -> None:
    layout: _Layout = self.__record__
    if args:
        kwargs = _by_name(type(self), layout, args, kwargs)
    if not layout.known.issuperset(kwargs):
        unknown = next(name for name in kwargs if name not in layout.known)
        raise TypeError(f"{type(self).__qualname__}() got an unexpected keyword argument {unknown!r}")
    if len(kwargs) < len(layout.names):
        for name, default in layout.defaults.items():
            if name not in kwargs:
                kwargs[name] = default.make() if isinstance(default, _Factory) else default
        if len(kwargs) < len(layout.names):
            missing = ", ".join(repr(name) for name in layout.names if name not in kwargs)
            raise TypeError(f"{type(self).__qualname__}() missing required arguments: {missing}")
    if layout.slots:
        put = object.__setattr__  # past a frozen class's __setattr__
        for name, value in kwargs.items():
            put(self, name, value)
    else:
        self.__dict__.update(kwargs)


def _by_name(cls: type, layout: _Layout, args: tuple[object, ...], kwargs: dict[str, object]) -> dict[str, object]:
    """The arguments of a call that gave some positionally, all by name."""
    if len(args) > len(layout.names):
        raise TypeError(
            f"{cls.__qualname__}() takes {len(layout.names)} positional arguments but {len(args)} were given"
        )
    given = dict(zip(layout.names, args, strict=False))  # the fields not given positionally come by name
    for name in kwargs:
        if name in given:
            raise TypeError(f"{cls.__qualname__}() got multiple values for argument {name!r}")
    given.update(kwargs)
    return given


@recursive_repr()
def _repr(self: Any) -> str:
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__record__.names)
    return f"{type(self).__qualname__}({shown})"


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is not self.__class__:
        return NotImplemented
    values = self.__record__.values
    return values(self) == values(other)


def _hash(self: Any) -> int:
    return hash(self.__record__.values(self))


def _getstate(self: Any) -> tuple[object, ...]:
    return tuple(getattr(self, name) for name in self.__record__.names)


def _setstate(self: Any, state: tuple[object, ...]) -> None:
    layout: _Layout = self.__record__
    values = dict(zip(layout.names, state, strict=False))
    for name in layout.names[len(state) :]:  # pickled before the field was added: its default
        default = layout.defaults[name]
        values[name] = default.make() if isinstance(default, _Factory) else default
    for name, value in values.items():
        object.__setattr__(self, name, value)


def _refuse_setattr(self: Any, name: str, value: object) -> None:
    if name in self.__record__.known or "__record__" in type(self).__dict__:  # a plain subclass may add its own
        raise FrozenInstanceError(f"cannot assign to field {name!r} of a frozen {type(self).__qualname__}")
    object.__setattr__(self, name, value)


def _refuse_delattr(self: Any, name: str) -> None:
    if name in self.__record__.known or "__record__" in type(self).__dict__:
        raise FrozenInstanceError(f"cannot delete field {name!r} of a frozen {type(self).__qualname__}")
    object.__delattr__(self, name)


def fields(obj: object) -> tuple[str, ...]:
    """The field names of a record class or instance, in order."""
    layout = getattr(obj, "__record__", None)
    if not isinstance(layout, _Layout):
        raise TypeError(f"{obj!r} is not a record or a record class")
    return layout.names


def replace(obj: R, /, **changes: object) -> R:
    """A new record like `obj` with `changes` (field name -> value)."""
    return type(obj)(**{**{name: getattr(obj, name) for name in fields(obj)}, **changes})


def asdict(obj: Any) -> dict[str, Any]:
    """A record's fields as a dict, as dataclasses.asdict makes one: records within it (also in
    lists, tuples and dicts) made dicts too, every other value deep-copied."""
    return {name: _plain(getattr(obj, name)) for name in fields(obj)}


def _plain(value: Any) -> Any:
    if isinstance(getattr(value, "__record__", None), _Layout) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple
        return type(value)(*(_plain(v) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return type(value)((_plain(k), _plain(v)) for k, v in value.items())
    import copy  # only here: the command line's plain output needs none of it

    return copy.deepcopy(value)
