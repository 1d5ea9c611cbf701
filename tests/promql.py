"""A small evaluator for the simple PromQL the alert rules in docs/operations.md use.

It reads two scrapes of ``/metrics`` (``before`` and ``after``, the second
taken at ``now``) and evaluates an expression to an instant vector: a list of
``(labels, value)``. Supported, and nothing more:

- selectors ``name{label="v", label=~"a|b", label!="v"}`` (on ``after``);
- ``increase(selector[range])``: ``after - before`` per series (a series
  missing before counts from 0); the range is read and ignored, the two
  scrapes are the window;
- ``sum``/``max``/``min`` with an optional ``by (labels)``;
- ``time()``, numbers, ``-``, ``*`` between a vector and a scalar, or two scalars;
- a comparison ``>``, ``>=``, ``<``, ``==`` against a scalar, which filters.

An alert fires when its expression returns a non-empty vector.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]
Vector = list[tuple[Labels, float]]


def parse_scrape(text: str) -> dict[tuple[str, Labels], float]:
    """``/metrics`` text as ``{(sample name, labels): value}``."""
    samples: dict[tuple[str, Labels], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return samples


_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d+)?)|(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)|(?P<str>\"[^\"]*\")"
    r"|(?P<range>\[[0-9]+[smhd]\])|(?P<op>=~|!=|>=|<=|==|[-+*/(){},=<>]))"
)


def _tokens(expr: str) -> list[str]:
    pos, out = 0, []
    expr = expr.strip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise ValueError(f"cannot parse {expr[pos:]!r}")
        out.append(m.group(0).strip())
        pos = m.end()
    return out


@dataclass
class Evaluator:
    before: dict[tuple[str, Labels], float]
    after: dict[tuple[str, Labels], float]
    now: float

    def fires(self, expr: str) -> Vector:
        """The series for which ``expr`` holds (empty: the alert is quiet)."""
        self._toks = _tokens(expr)
        self._i = 0
        value = self._comparison()
        if self._i != len(self._toks):
            raise ValueError(f"trailing {self._toks[self._i :]} in {expr!r}")
        if isinstance(value, float):
            raise ValueError(f"{expr!r} is a scalar, not an alert")
        return value

    # -- grammar: comparison > additive > multiplicative > primary ------------

    def _peek(self) -> str | None:
        return self._toks[self._i] if self._i < len(self._toks) else None

    def _take(self, expected: str | None = None) -> str:
        tok = self._toks[self._i]
        if expected is not None and tok != expected:
            raise ValueError(f"expected {expected!r}, got {tok!r}")
        self._i += 1
        return tok

    def _comparison(self) -> Vector | float:
        left = self._additive()
        ops: dict[str, Callable[[float, float], bool]] = {
            ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b,
            "<": lambda a, b: a < b,
            "==": lambda a, b: a == b,
        }
        if self._peek() in ops:
            op = ops[self._take()]
            right = self._additive()
            if isinstance(left, float) or not isinstance(right, float):
                raise ValueError("only vector OP scalar comparisons are supported")
            return [(labels, v) for labels, v in left if op(v, right)]
        return left

    def _additive(self) -> Vector | float:
        left = self._multiplicative()
        while self._peek() == "-":
            self._take()
            right = self._multiplicative()
            left = _combine(left, right, lambda a, b: a - b)
        return left

    def _multiplicative(self) -> Vector | float:
        left = self._primary()
        while self._peek() == "*":
            self._take()
            right = self._primary()
            left = _combine(left, right, lambda a, b: a * b)
        return left

    def _primary(self) -> Vector | float:
        tok = self._take()
        if re.fullmatch(r"\d+(\.\d+)?", tok):
            return float(tok)
        if tok == "(":
            inner = self._additive()
            self._take(")")
            return inner
        if tok == "time":
            self._take("(")
            self._take(")")
            return self.now
        if tok in ("sum", "max", "min"):
            by: tuple[str, ...] | None = None
            if self._peek() == "by":
                self._take()
                self._take("(")
                names = []
                while self._peek() != ")":
                    name = self._take()
                    if name != ",":
                        names.append(name)
                self._take(")")
                by = tuple(names)
            self._take("(")
            inner = self._additive()
            self._take(")")
            if isinstance(inner, float):
                raise ValueError(f"{tok} of a scalar")
            return _aggregate(tok, inner, by)
        if tok == "increase":
            self._take("(")
            name, matchers = self._selector(self._take())
            rng = self._take()
            if not rng.startswith("["):
                raise ValueError("increase() needs a range")
            self._take(")")
            now = self._select(self.after, name, matchers)
            then = dict(self._select(self.before, name, matchers))
            return [(labels, v - then.get(labels, 0.0)) for labels, v in now]
        name, matchers = self._selector(tok)
        return self._select(self.after, name, matchers)

    def _selector(self, name: str) -> tuple[str, list[tuple[str, str, str]]]:
        matchers: list[tuple[str, str, str]] = []
        if self._peek() == "{":
            self._take()
            while self._peek() != "}":
                label = self._take()
                if label == ",":
                    continue
                op = self._take()
                value = self._take().strip('"')
                matchers.append((label, op, value))
            self._take("}")
        return name, matchers

    @staticmethod
    def _select(
        samples: dict[tuple[str, Labels], float], name: str, matchers: list[tuple[str, str, str]]
    ) -> Vector:
        out: Vector = []
        for (sample, labels), value in samples.items():
            if sample != name:
                continue
            have = dict(labels)
            if all(_matches(have.get(label, ""), op, want) for label, op, want in matchers):
                out.append((labels, value))
        return out


def _matches(value: str, op: str, want: str) -> bool:
    if op == "=":
        return value == want
    if op == "!=":
        return value != want
    if op == "=~":
        return re.fullmatch(want, value) is not None
    raise ValueError(f"unsupported matcher {op}")


def _combine(
    left: Vector | float, right: Vector | float, op: Callable[[float, float], float]
) -> Vector | float:
    if isinstance(left, float) and isinstance(right, float):
        return op(left, right)
    if isinstance(left, float):
        assert not isinstance(right, float)
        return [(labels, op(left, v)) for labels, v in right]
    if isinstance(right, float):
        return [(labels, op(v, right)) for labels, v in left]
    raise ValueError("vector-vector arithmetic is not supported")


def _aggregate(how: str, vector: Vector, by: tuple[str, ...] | None) -> Vector:
    groups: dict[Labels, list[float]] = {}
    for labels, value in vector:
        have = dict(labels)
        key = tuple((name, have.get(name, "")) for name in by) if by else ()
        groups.setdefault(key, []).append(value)
    reduce = {"sum": sum, "max": max, "min": min}[how]
    return [(key, float(reduce(values))) for key, values in groups.items()]
