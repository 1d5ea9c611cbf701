"""A sandboxed Jinja environment that also bounds the work one render may do.

Jinja's :class:`~jinja2.sandbox.SandboxedEnvironment` keeps a template away
from Python's internals, but not from running for ever or filling memory: two
nested ``range(100000)`` loops are ten billion steps, ``"x" * 10**9`` is a
gigabyte. Admin templates are config, so :class:`BoundedSandbox` adds limits
that hold while a template runs:

* **loop iterations**: every ``{% for %}`` counts against
  :data:`MAX_LOOP_ITERATIONS` for the whole render; ``range`` itself is no
  longer than that;
* **steps**: calls (macros too), attribute and item lookups, operators,
  filters and loop iterations count against :data:`MAX_STEPS`;
* **size**: no value a template builds (string, list, mapping) may be longer
  than :data:`MAX_VALUE_LENGTH`, and the operations that multiply sizes
  (``*``, ``**``, ``~``, ``join``, ``replace``, ``indent``, ``wordwrap``,
  widths in ``center``, ``format`` and ``%``, integer arguments) are checked
  *before* they run; everything a render writes, in ``{% set %}`` blocks and
  macros too, counts against :data:`MAX_OUTPUT_CHARS`;
* **time**: with a clock passed in (the core reads none itself), a render
  stops after :data:`MAX_RENDER_SECONDS`.

The loop, output and concatenation checks are filters inserted into the
template's syntax tree when it is parsed: a template can shadow a name but
not a filter. Past a limit a render raises :class:`TemplateLimitExceeded`.
Render with :meth:`BoundedSandbox.render`, and wrap any other use of a template
(reading its module) in :meth:`BoundedSandbox.budget`: each gets a fresh budget.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2 import Template, nodes, pass_context
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment
from jinja2.visitor import NodeTransformer

MAX_LOOP_ITERATIONS = 10_000
MAX_STEPS = 50_000
MAX_VALUE_LENGTH = 50_000
MAX_OUTPUT_CHARS = 200_000
MAX_RENDER_SECONDS = 2.0
MAX_EXPONENT = 256
MAX_INT_BITS = 4096

Clock = Callable[[], float]

_LOOP = "fa_bounded_loop"
_OUTPUT = "fa_counted_output"
_VALUE = "fa_checked_value"
# A width or precision of six digits or more in a format spec: "{:999999}", "%999999d".
_HUGE_WIDTH = re.compile(r"[{%][^}%]*?\d{6,}")
_TWO_STRING_GROWTH = frozenset({"indent", "wordwrap", "center"})


class TemplateLimitExceeded(Exception):
    """A render went past one of the limits; the message says which."""


@dataclass
class _Budget:
    clock: Clock | None
    deadline: float = math.inf
    loops: int = 0
    steps: int = 0
    output: int = 0

    def __post_init__(self) -> None:
        if self.clock is not None:
            self.deadline = self.clock() + MAX_RENDER_SECONDS

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise TemplateLimitExceeded(f"more than {MAX_STEPS} steps")
        # Reading the clock costs a little; every 64th step is often enough.
        if self.clock is not None and self.steps % 64 == 0 and self.clock() > self.deadline:
            raise TemplateLimitExceeded(f"rendering took more than {MAX_RENDER_SECONDS:g} s")

    def loop(self) -> None:
        self.loops += 1
        if self.loops > MAX_LOOP_ITERATIONS:
            raise TemplateLimitExceeded(f"more than {MAX_LOOP_ITERATIONS} loop iterations")
        self.step()

    def wrote(self, chars: int) -> None:
        self.output += chars
        if self.output > MAX_OUTPUT_CHARS:
            raise TemplateLimitExceeded(f"more than {MAX_OUTPUT_CHARS} characters of output")


_budget: ContextVar[_Budget | None] = ContextVar("template_budget", default=None)


def _current() -> _Budget:
    # Outside a render (Jinja folds constant filters at compile time) the size checks still hold.
    return _budget.get() or _Budget(clock=None)


def _checked(value: Any) -> Any:
    """``value``, if it is not too big to be something a template builds."""
    if isinstance(value, str | bytes | list | tuple | dict | set | frozenset):
        if len(value) > MAX_VALUE_LENGTH:
            raise TemplateLimitExceeded(
                f"a value of {len(value)} items (the limit is {MAX_VALUE_LENGTH})"
            )
    elif isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise TemplateLimitExceeded(f"an integer of more than {MAX_INT_BITS} bits")
    return value


def _length(value: Any) -> int:
    return len(value) if isinstance(value, Sized) else len(str(value))


def _check_operation(
    name: str, subject: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> None:
    """Refuse an operation (a filter, or a method of ``subject``) that would build a huge value."""
    extras = [*args, *(v for k, v in kwargs.items() if not k.startswith("_"))]
    _checked(subject)
    for value in extras:
        _checked(value)
        # No agenda needs a number this big; as a width or count it makes a huge value.
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_VALUE_LENGTH:
            raise TemplateLimitExceeded(f"{name or 'a call'}: an argument of {value}")
    if (
        name in ("format", "format_map")
        and isinstance(subject, str)
        and _HUGE_WIDTH.search(subject)
    ):
        raise TemplateLimitExceeded(f"{name}: a width or precision of 100000 or more")
    if name == "join":
        items, separator = (
            (args[0] if args else (), subject)
            if isinstance(subject, str)
            else (subject, args[0] if args else "")
        )
        if isinstance(items, list | tuple):
            total = sum(_length(item) for item in items) + len(items) * _length(separator)
            if total > MAX_VALUE_LENGTH:
                raise TemplateLimitExceeded(f"join: {total} characters")
    if name == "replace" and isinstance(subject, str) and len(args) >= 2:
        old, new = str(args[0]), str(args[1])
        grown = len(subject) + (len(subject) + 1) * max(0, len(new) - len(old))
        if grown > 4 * MAX_VALUE_LENGTH:
            raise TemplateLimitExceeded("replace: the result could be too long")
    if name in _TWO_STRING_GROWTH and isinstance(subject, str):
        longest = max((len(v) for v in extras if isinstance(v, str)), default=0)
        if len(subject) * (1 + longest) > 4 * MAX_VALUE_LENGTH:
            raise TemplateLimitExceeded(f"{name}: the result could be too long")


@pass_context
def _bounded_loop(_context: Context, iterable: Iterable[Any]) -> Iterator[Any]:
    budget = _current()
    for item in iterable:
        budget.loop()
        yield item


@pass_context
def _counted_output(_context: Context, value: Any) -> Any:
    _current().wrote(_length(value))
    return value


@pass_context
def _checked_value(_context: Context, value: Any) -> Any:
    _current().step()
    return _checked(value)


def _bounded_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_LOOP_ITERATIONS:
        raise TemplateLimitExceeded(f"a range of {len(numbers)} numbers")
    return numbers


_bounded_range.__name__ = "range"  # what messages call it


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _current().step()
        # Skip what Jinja passes first to some filters: their context or environment.
        given = [a for a in args if not isinstance(a, Context | EvalContext | SandboxedEnvironment)]
        if given:
            _check_operation(name, given[0], tuple(given[1:]), kwargs)
        return _checked(func(*args, **kwargs))

    pass_arg = getattr(func, "jinja_pass_arg", None)
    if pass_arg is not None:
        guarded.jinja_pass_arg = pass_arg  # type: ignore[attr-defined]
    return guarded


def _filtered(node: nodes.Node | None, name: str, lineno: int) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=lineno)


class _InsertChecks(NodeTransformer):
    """Wrap loops, output and concatenation in the checking filters."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _filtered(node.iter, _LOOP, node.lineno)
        return node

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [
            # Literal text stays markup (not escaped again) in autoescaped templates.
            _filtered(nodes.MarkSafe(child) if isinstance(child, nodes.TemplateData) else child,
                      _OUTPUT, child.lineno)
            for child in node.nodes
        ]  # fmt: skip
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _filtered(node, _VALUE, node.lineno)


class BoundedSandbox(SandboxedEnvironment):
    """A :class:`SandboxedEnvironment` whose renders stay within this module's limits."""

    intercepted_binops = frozenset({"*", "**", "%", "+", "//"})

    def __init__(self, *, clock: Clock | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.clock = clock
        self.filters = {name: _guard_filter(name, f) for name, f in self.filters.items()}
        self.filters.update({_LOOP: _bounded_loop, _OUTPUT: _counted_output,
                             _VALUE: _checked_value})  # fmt: skip
        self.globals["range"] = _bounded_range

    @contextmanager
    def budget(self) -> Iterator[None]:
        """A fresh budget for everything templates do inside the ``with``."""
        token = _budget.set(_Budget(clock=self.clock))
        try:
            yield
        finally:
            _budget.reset(token)

    def render(self, template: Template, context: Mapping[str, Any]) -> str:
        """``template`` rendered with ``context``, within the limits."""
        with self.budget():
            return template.render(context)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        checked = _InsertChecks().visit(tree)
        assert isinstance(checked, nodes.Template)
        return checked

    # --- the sandbox's hooks: one step each, and the size checks --------

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _current().step()
        # The sandbox hands out str.format wrapped; the wrapper keeps the method as __wrapped__.
        owner = getattr(getattr(__obj, "__wrapped__", __obj), "__self__", None)
        name = getattr(__obj, "__name__", "")
        _check_operation(name if isinstance(name, str) else "", owner, args, kwargs)
        return _checked(SandboxedEnvironment.call(__self, __context, __obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        _current().step()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _current().step()
        return super().getitem(obj, argument)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _current().step()
        if (
            operator == "**"
            and isinstance(right, int | float)
            and abs(right) > MAX_EXPONENT
            and not (isinstance(left, int | float) and abs(left) <= 1)
        ):
            raise TemplateLimitExceeded(f"an exponent of {right}")
        sized, times = (left, right) if isinstance(right, int) else (right, left)
        if (
            operator == "*"
            and isinstance(sized, Sized)
            and isinstance(times, int)
            and len(sized) * max(0, times) > MAX_VALUE_LENGTH
        ):
            raise TemplateLimitExceeded(f"a value of {len(sized)} items times {times}")
        if operator == "%" and isinstance(left, str) and _HUGE_WIDTH.search(left):
            raise TemplateLimitExceeded("a width or precision of 100000 or more")
        return _checked(super().call_binop(context, operator, left, right))
