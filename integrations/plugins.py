"""A registry of plug-ins: name -> the module that exports its spec, imported on first use.

Calendar providers (:mod:`feedback_agendas.integrations.calendars.registry`)
and org directories (:mod:`feedback_agendas.integrations.directory.registry`)
each keep one. A spec is a frozen object with a ``name``; the module exports
it under a fixed attribute (``PROVIDER``, ``DIRECTORY``). Importing on first
use keeps a vdir-only run from importing googleapiclient until the config
asks for a model of every plug-in.
"""

from __future__ import annotations

import importlib
from typing import Generic, Protocol, TypeVar


class Spec(Protocol):
    @property
    def name(self) -> str: ...


S = TypeVar("S", bound=Spec)


class Registry(Generic[S]):
    """Names in registration order, each with the module that exports its spec."""

    def __init__(self, what: str, attribute: str, spec_type: type[S], modules: dict[str, str]):
        self.what = what
        self.attribute = attribute
        self.spec_type = spec_type
        self._modules = dict(modules)
        self._loaded: dict[str, S] = {}

    def names(self) -> tuple[str, ...]:
        """The registered names, in order."""
        return tuple(self._modules)

    def spec(self, name: str) -> S:
        """The spec registered under ``name``; ``ValueError`` for a name nobody registered."""
        spec = self._loaded.get(name)
        if spec is not None:
            return spec
        try:
            module_name = self._modules[name]
        except KeyError:
            raise ValueError(f"unknown {self.what} {name!r}") from None
        spec = getattr(importlib.import_module(module_name), self.attribute)
        if not isinstance(spec, self.spec_type) or spec.name != name:
            raise TypeError(f"{module_name}.{self.attribute} is not the spec of {name!r}")
        self._loaded[name] = spec
        return spec

    def specs(self) -> tuple[S, ...]:
        """Every spec, in order (imports every module)."""
        return tuple(self.spec(name) for name in self._modules)

    def register(self, name: str, module: str) -> None:
        """Add a plug-in at run time (a test; a plug-in installed beside the package)."""
        self._modules[name] = module
        self._loaded.pop(name, None)

    def unregister(self, name: str) -> None:
        """Remove a plug-in added with :meth:`register`."""
        self._modules.pop(name, None)
        self._loaded.pop(name, None)
