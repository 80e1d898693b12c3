"""One small registry for every open choice: models, image and audio encoders, fusion blocks and
compression stages (torch-free).

A registry maps names to factories. Built-ins register themselves where they are defined; users
register their own with the same decorator, and installed packages through an entry-point group
that is read the first time a name is missing:

    >>> from edgemm.models import IMAGE_ENCODERS
    >>> @IMAGE_ENCODERS.register("my_cnn")
    ... def my_cnn(*, pretrained=None):
    ...     return MyEncoder()               # has .out_dim

    # pyproject.toml of an installed plug-in package
    [project.entry-points."edgemm.image_encoders"]
    my_cnn = "my_pkg.encoders:my_cnn"
"""

from __future__ import annotations

import fnmatch
from importlib import metadata
from typing import Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Names to objects of one kind.

    Args:
        kind: What is registered, for messages (``"image encoder"``).
        group: The entry-point group installed plug-ins register under (``"edgemm.image_encoders"``).
    """

    def __init__(self, kind: str, group: str | None = None) -> None:
        self.kind, self.group = kind, group
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None, *, replace: bool = False):
        """Registers ``obj`` under ``name``; without ``obj``, a decorator that registers what it decorates.

        Raises:
            ValueError: The name is taken (pass ``replace=True`` to override a registration on purpose).
        """
        def add(item: T) -> T:
            if not isinstance(name, str) or not name:
                raise ValueError(f"{self.kind} names are non-empty strings, got {name!r}")
            if name in self._items and not replace:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = item
            return item

        return add if obj is None else add(obj)

    def unregister(self, name: str) -> None:
        """Removes a registration (tests, notebooks re-running a cell); unknown names are ignored."""
        self._items.pop(name, None)

    def get(self, name: str) -> T:
        """The object registered as ``name`` (installed plug-ins are looked up on a miss).

        Raises:
            ValueError: Unknown name; the message lists the registered ones.
        """
        name = getattr(name, "value", name)  # str enums of built-in names
        if name not in self._items:
            self.load_plugins()
        if name not in self._items:
            raise ValueError(f"unknown {self.kind} {name!r}; registered: {', '.join(self.names()) or 'none'}")
        item = self._items[name]
        if isinstance(item, _Deferred):
            item = self._items[name] = item.load()
        return item

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style pattern, sorted (plug-ins included)."""
        self.load_plugins()
        return sorted(n for n in self._items if fnmatch.fnmatch(n, pattern))

    def load_plugins(self) -> None:
        """Registers the entry points of ``group`` from installed packages (built-ins and earlier
        registrations win). Called on every miss, so a package installed meanwhile is found."""
        if self.group is None:
            return
        for ep in metadata.entry_points(group=self.group):
            if ep.name not in self._items:
                self._items[ep.name] = _Deferred(ep)  # imported when first used

    def __contains__(self, name: object) -> bool:
        return getattr(name, "value", name) in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())


class _Deferred:
    """An entry point not imported yet."""

    def __init__(self, ep: metadata.EntryPoint) -> None:
        self.ep = ep

    def load(self):
        try:
            return self.ep.load()
        except Exception as e:  # noqa: BLE001 - a broken plug-in names itself
            raise ImportError(f"plug-in {self.ep.name!r} ({self.ep.value}, group {self.ep.group}) failed to load: "
                              f"{type(e).__name__}: {e}") from e

