"""Reading the config file: YAML with line tracking, ``${VAR}``, every problem at its line.

``load_config`` reads the file, substitutes ``${VAR}`` from the environment,
validates everything with the schema (:mod:`.schema`) and cross-checks
references between sections. Every problem is collected first and raised
together as one :class:`~feedback_agendas.agendas.errors.ConfigError`, each as
``FILE:LINE: key.path: message``. Lines come from PyYAML's composed node tree,
so a pydantic ``loc`` such as ``("org", "teams", 0, "locale")`` points at the
line an admin has to edit.

It runs past 400 lines because the loader must never crash on any file
(``bench.config_fuzz``): the YAML reader, the ``${VAR}`` substitution and the
turning of every pydantic error into FILE:LINE problems stay together, since
each of them needs the line map the reader builds.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from feedback_agendas.agendas.errors import ConfigError
from feedback_agendas.integrations.config_types import Loc, ProblemAt, format_key_path
from feedback_agendas.scheduler.config.schema import (
    AppConfig,
    calendar_entry_positions,
    config_model,
    cross_reference_problems,
    place_in_file,
)


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1 base-60 integers, so ``start: 20:00`` stays a string.

    An impossible date (``2026-13-01``) stays a string too, so that validation
    reports it at its key instead of the whole file failing to load.
    """

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        # An explicit tag on a value it cannot read (``!!float x``, ``!!timestamp x``)
        # makes PyYAML's constructors raise plain ValueError/AttributeError/KeyError.
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, AttributeError, KeyError, OverflowError):
            tag = node.tag.rpartition(":")[2]
            raise yaml.constructor.ConstructorError(
                None, None, f"this value cannot be read as !!{tag}", node.start_mark
            ) from None

    def construct_yaml_timestamp(self, node: ScalarNode) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except (ValueError, AttributeError):
            return self.construct_scalar(node)

    def construct_yaml_int(self, node: ScalarNode) -> Any:
        # Past Python's 4,300-digit limit int() raises; validation then says "not an integer".
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            return self.construct_scalar(node)


_INT_TAG = "tag:yaml.org,2002:int"
_ConfigLoader.add_constructor("tag:yaml.org,2002:timestamp", _ConfigLoader.construct_yaml_timestamp)
_ConfigLoader.add_constructor(_INT_TAG, _ConfigLoader.construct_yaml_int)
_ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _INT_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ConfigLoader.add_implicit_resolver(
    _INT_TAG,
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)


_STR_TAG = "tag:yaml.org,2002:str"
_ENV_REFERENCE = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _walk(node: Node, loc: Loc, seen: set[int]) -> Iterator[tuple[Loc, Node, Node | None]]:
    """Every node below ``node`` with its key path and, in a mapping, its key node."""
    if id(node) in seen:  # anchors and aliases share nodes; aliases may even recurse
        return
    seen.add(id(node))
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            part: str | int = key_node.value if isinstance(key_node, ScalarNode) else "?"
            yield (*loc, part), value_node, key_node
            yield from _walk(value_node, (*loc, part), seen)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            yield (*loc, index), item, None
            yield from _walk(item, (*loc, index), seen)


def _substitute_environment(root: Node, environ: Mapping[str, str]) -> list[tuple[Node, Loc, str]]:
    """Replace ``${VAR}`` in string values in place; ``$${`` stays a literal ``${``.

    Returns a problem per missing variable. The value itself is never put in a
    message: it is usually a secret.
    """
    problems: list[tuple[Node, Loc, str]] = []
    for loc, node, _key in _walk(root, (), set()):
        if not isinstance(node, ScalarNode) or node.tag != _STR_TAG or "${" not in node.value:
            continue

        def replace(match: re.Match[str], loc: Loc = loc, node: Node = node) -> str:
            escaped, name = match.group(1), match.group(2)
            if escaped:
                return "${" + name + "}"
            if name not in environ:
                problems.append((node, loc, f"environment variable {name} is not set"))
                return match.group(0)
            return environ[name]

        node.value = _ENV_REFERENCE.sub(replace, node.value)
    return problems


def _duplicate_keys(root: Node) -> list[tuple[Node, Loc, str]]:
    """PyYAML silently keeps the last of two equal keys; an admin wants to hear about it."""
    problems: list[tuple[Node, Loc, str]] = []
    mappings = [((), root)] + [(loc, node) for loc, node, _key in _walk(root, (), set())]
    for loc, node in mappings:
        if not isinstance(node, MappingNode):
            continue
        keys: set[str] = set()
        for key_node, _value in node.value:
            if not isinstance(key_node, ScalarNode):
                continue
            if key_node.value in keys:
                problems.append((key_node, (*loc, key_node.value), "duplicate key"))
            keys.add(key_node.value)
    return problems


_SURROGATE = re.compile("[\ud800-\udfff]")


def _lone_surrogates(root: Node) -> list[tuple[Node, Loc, str]]:
    """A ``"\\ud800"`` escape makes a string no encoder accepts: refuse it at its line."""
    problems: list[tuple[Node, Loc, str]] = []
    for loc, node, key in [((), root, None), *_walk(root, (), set())]:
        for scalar in (key, node):
            if isinstance(scalar, ScalarNode) and _SURROGATE.search(scalar.value):
                problems.append(
                    (scalar, loc, "an escape of a lone surrogate (\\ud800) is not text")
                )
    return problems


def line_of(root: Node, loc: Loc) -> int:
    """The 1-based line an admin has to edit for ``loc`` (already without union tags).

    A key that is there points at its own line; a missing key at the line of
    the mapping it is missing from.
    """
    node: Node = root
    line = node.start_mark.line
    for part in loc:
        if isinstance(node, MappingNode):
            if part == "[key]":
                continue
            found = next(
                (
                    (key, value)
                    for key, value in node.value
                    if isinstance(key, ScalarNode) and key.value == part
                ),
                None,
            )
            if found is None:
                break
            line = found[0].start_mark.line
            node = found[1]
        elif isinstance(node, SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line
        else:
            break
    return line + 1


# The keys that tell a union's models apart: a calendar's provider, a source's kind.
_UNION_TAGS = frozenset({"provider", "discover"})


def _is_union_tag(node: MappingNode, part: str | int) -> bool:
    return any(
        isinstance(key, ScalarNode)
        and key.value in _UNION_TAGS
        and isinstance(value, ScalarNode)
        and value.value == part
        for key, value in node.value
    )


def _strip_union_tags(root: Node, loc: Loc) -> Loc:
    """Drop the discriminator values pydantic inserts (``calendars[0].vdir.path``)."""
    kept: list[str | int] = []
    node: Node | None = root
    entered = True  # the tag comes first inside an entry, even where a key has its name
    for part in loc:
        if isinstance(node, MappingNode):
            if entered and _is_union_tag(node, part):
                entered = False
                continue
            found = next(
                (v for k, v in node.value if isinstance(k, ScalarNode) and k.value == part), None
            )
            node = found
        elif isinstance(node, SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            node = None
        entered = True
        kept.append(part)
    return tuple(kept)


def _describe_error(error: Mapping[str, Any]) -> tuple[Loc, str]:
    """A pydantic error as (loc, message), in words an admin understands."""
    loc: Loc = tuple(error["loc"])
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return loc, "unknown key"
    if kind == "missing":
        return loc, "missing required key"
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        tag = str(ctx.get("discriminator") or "provider").strip("'")
        if kind == "union_tag_not_found":
            return (*loc, tag), "missing required key"
        expected = str(ctx.get("expected_tags") or "")
        choices = ", ".join(t.strip().strip("'") for t in expected.split(",") if t.strip())
        return (*loc, tag), f"should be one of: {choices}"
    if kind == "value_error":
        cause = ctx.get("error")
        if isinstance(cause, ProblemAt):
            return (*loc, cause.key), str(cause)
        if cause is not None:
            return loc, str(cause)
    return loc, str(error["msg"])


def _without_consequential_errors(errors: list[Any]) -> list[Any]:
    """Drop "too short" for a list whose items failed: pydantic counts only the valid ones."""

    def has_failed_items(loc: tuple[Any, ...]) -> bool:
        return any(
            len(other["loc"]) > len(loc) and tuple(other["loc"][: len(loc)]) == loc
            for other in errors
        )

    return [
        error
        for error in errors
        if not (error["type"] == "too_short" and has_failed_items(tuple(error["loc"])))
    ]


Problem = tuple[int, str]  # (line, message); line 0 = the whole file


# Far deeper than any real config; PyYAML, our tree walks and pydantic all recurse.
MAX_NESTING = 40


def _too_deep(root: Node) -> Node | None:
    """The first node nested deeper than :data:`MAX_NESTING`, found without recursion."""
    stack: list[tuple[Node, int]] = [(root, 0)]
    seen: set[int] = set()
    while stack:
        node, depth = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if depth > MAX_NESTING:
            return node
        if isinstance(node, MappingNode):
            stack.extend((child, depth + 1) for pair in node.value for child in pair)
        elif isinstance(node, SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)
    return None


def _yaml_problem(source: str, text: str, exc: yaml.YAMLError) -> Problem:
    """A PyYAML error as ``FILE:LINE: YAML syntax error: ...``."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        reason = exc.problem or exc.context or "invalid YAML"
    elif isinstance(exc, yaml.reader.ReaderError):
        # A control character, even inside a comment: YAML forbids it anywhere.
        line = text.count("\n", 0, max(0, exc.position)) + 1
        reason = f"character #x{exc.character:04x} is not allowed in YAML, even in a comment"
        if isinstance(exc.character, bytes):  # pragma: no cover - only for byte input
            reason = "the file is not UTF-8 text"
    else:  # pragma: no cover - PyYAML raises only the two kinds above
        line, reason = 0, "invalid YAML"
    where = f"{source}:{line}" if line else source
    return line, f"{where}: YAML syntax error: {reason}"


def _read_yaml(path: Path, environ: Mapping[str, str]) -> tuple[Node | None, Any, list[Problem]]:
    """Parse the file into (node tree, data, problems with their lines)."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return None, None, [(0, f"{source}: cannot read the file: {exc.strerror or exc}")]
    except (UnicodeDecodeError, ValueError):
        return None, None, [(0, f"{source}: the file is not UTF-8 text")]
    try:
        # The reader checks every character as it is built: a control character fails here.
        loader = _ConfigLoader(text)
    except yaml.YAMLError as exc:
        return None, None, [_yaml_problem(source, text, exc)]
    try:
        try:
            root = loader.get_single_node()
        except RecursionError:
            line = loader.get_mark().line + 1
            return None, None, [(line, f"{source}:{line}: YAML nests too deeply")]
        if root is None:
            return None, None, [(1, f"{source}:1: the file is empty")]
        deep = _too_deep(root)
        if deep is not None:
            line = deep.start_mark.line + 1
            return None, None, [(line, f"{source}:{line}: nested more than {MAX_NESTING} deep")]
        surrogates = _lone_surrogates(root)
        if surrogates:
            return None, None, [_located(source, node, loc, msg) for node, loc, msg in surrogates]
        located = _duplicate_keys(root) + _substitute_environment(root, environ)
        data = loader.construct_document(root)
    except yaml.YAMLError as exc:
        return None, None, [_yaml_problem(source, text, exc)]
    finally:
        loader.dispose()
    return root, data, [_located(source, node, loc, message) for node, loc, message in located]


def _located(source: str, node: Node, loc: Loc, message: str) -> Problem:
    line = node.start_mark.line + 1
    return line, f"{source}:{line}: {format_key_path(loc)}: {message}"


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> AppConfig:
    """Read, substitute and validate the config file at ``path``.

    ``environ`` supplies ``${VAR}`` values (default: ``os.environ``).
    Raises :class:`~feedback_agendas.agendas.errors.ConfigError` listing every problem, in file
    order, as ``FILE:LINE: key.path: message``, and never anything else: an
    input no check foresaw still gives a ConfigError (naming the file and the
    kind of failure, never a value, which may be a secret), not a traceback.
    """
    return load_config_located(path, environ).config


@dataclass(frozen=True)
class LocatedConfig:
    """A valid config with its file and YAML node tree, to point later checks at lines."""

    config: AppConfig
    source: Path
    root: Node

    def problem(self, loc: Loc, message: str) -> tuple[int, str]:
        """(line, ``FILE:LINE: key.path: message``) for a problem at ``loc``.

        ``calendars[i]`` and ``calendar_sources[i]`` of the config are placed
        at their entry in the file's one ``calendars`` list.
        """
        loc = place_in_file(loc, *_node_places(self.root))
        line = line_of(self.root, loc)
        key = format_key_path(loc)
        where = f"{self.source}:{line}"
        return line, f"{where}: {key}: {message}" if key else f"{where}: {message}"


def _node_places(root: Node) -> tuple[list[int], list[int]]:
    """:func:`calendar_entry_positions` of the file's node tree."""
    listed = next(
        (
            value
            for key, value in (root.value if isinstance(root, MappingNode) else ())
            if isinstance(key, ScalarNode) and key.value == "calendars"
        ),
        None,
    )
    if not isinstance(listed, SequenceNode):
        return [], []
    entries = [
        {k.value: None for k, _v in item.value if isinstance(k, ScalarNode)}
        if isinstance(item, MappingNode)
        else None
        for item in listed.value
    ]
    return calendar_entry_positions(entries)


def load_config_located(path: Path, environ: Mapping[str, str] | None = None) -> LocatedConfig:
    """:func:`load_config`, keeping the file's node tree for checks that come later."""
    path = Path(path)
    try:
        config, root = _load_config(path, environ)
        return LocatedConfig(config=config, source=path, root=root)
    except ConfigError:
        raise
    except Exception as exc:  # the last line of defence; the fuzz test keeps it unused
        raise ConfigError([f"{path}: {UNFORESEEN} ({type(exc).__name__})"]) from exc


UNFORESEEN = "this file could not be checked; please report it as a bug"


def _load_config(path: Path, environ: Mapping[str, str] | None) -> tuple[AppConfig, Node]:
    source = str(path)
    root, data, problems = _read_yaml(path, os.environ if environ is None else environ)
    if root is None:
        raise ConfigError([text for _line, text in problems])
    if not isinstance(data, dict):
        problems.append((1, f"{source}:1: the file must be a mapping of sections"))
        raise ConfigError([text for _line, text in problems])

    found: list[tuple[Loc, str]] = []
    config: AppConfig | None = None
    try:
        config = config_model().model_validate(data, context={"base_dir": path.resolve().parent})
    except ValidationError as exc:
        errors = _without_consequential_errors(exc.errors(include_url=False, include_input=False))
        places = calendar_entry_positions(data.get("calendars"))
        for error in errors:
            loc, message = _describe_error(error)
            found.append((_strip_union_tags(root, place_in_file(loc, *places)), message))
    found += cross_reference_problems(data)

    for loc, message in found:
        line = line_of(root, loc)
        key = format_key_path(loc)
        problems.append(
            (line, f"{source}:{line}: {key}: {message}" if key else f"{source}:{line}: {message}")
        )
    if problems or config is None:
        # sorted() is stable, so problems on one line keep the order they were found in.
        ordered = sorted(dict.fromkeys(problems), key=lambda problem: problem[0])
        raise ConfigError([text for _line, text in ordered])
    return config, root
