"""A generic registry: decorator registration, lazy import by "module:attr", did-you-mean errors."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from adabench.errors import did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects; entries may be registered eagerly or as lazy "module:attr" strings."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T | str] = {}

    def register(self, name: str, obj: T | str | None = None) -> Callable[[T], T] | None:
        """Registers `obj` under `name`; without `obj`, returns a decorator that does it."""
        if obj is not None:
            self._items[name] = obj
            return None

        def decorator(target: T) -> T:
            self._items[name] = target
            return target

        return decorator

    def get(self, name: str) -> T:
        """Returns the object for `name`, importing it if lazy; unknown names raise UserError."""
        if name not in self._items:
            raise did_you_mean(name, self._items, self.kind)
        item = self._items[name]
        if isinstance(item, str) and ":" in item:
            module, attr = item.split(":", 1)
            item = getattr(importlib.import_module(module), attr)
            self._items[name] = item
        return item  # type: ignore[return-value]

    def unregister(self, name: str) -> None:
        """Removes `name` (no error when it is absent)."""
        self._items.pop(name, None)

    def names(self) -> list[str]:
        """Returns the registered names in registration order."""
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)
