"""Render an :class:`~feedback_agendas.agendas.plan.AgendaPlan` into the body of an agenda block.

Templates live in ``templates/agenda`` (shipped with the package) and are
looked up by name, first in the admin's template folder, so an admin can
override any of them:

* ``one_on_one.txt.j2``, ``one_on_one.html.j2``, ``team.txt.j2``,
  ``team.html.j2``: the structure, plain text (ICS, CalDAV) and HTML (Google:
  ``b i u a br ul li`` only);
* ``strings/<locale>.j2``: the wording (``en``, ``sv``; an admin may add more).

One sandboxed Jinja environment with ``StrictUndefined`` is built per
renderer; every template is compiled and checked once, when the renderer is
built, and rendered bodies are cached by the inputs that shape them. A body
never contains a block marker or the opt-out marker, and the whole block
stays within :data:`feedback_agendas.agendas.block.MAX_BLOCK_CHARS`: goals and a long norm
sentence are shortened to fit.
"""

from __future__ import annotations

import hashlib
import pathlib
import re
from collections.abc import Mapping
from typing import Any

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    Template,
    TemplateSyntaxError,
)

from feedback_agendas.agendas.block import (
    PLACEHOLDER,
    contains_marker,
    max_body_chars,
    strip_markers,
)
from feedback_agendas.agendas.classify import MeetingKind
from feedback_agendas.agendas.errors import ConfigError, TemplateFailed
from feedback_agendas.agendas.model import TextFormat
from feedback_agendas.agendas.plan import AgendaPlan, SlotKind
from feedback_agendas.agendas.policy import OptOut
from feedback_agendas.agendas.template_sandbox import BoundedSandbox, Clock, TemplateLimitExceeded

DEFAULT_LOCALE = "en"
MAX_GOALS = 5
MAX_GOAL_CHARS = 160
MAX_NORM_CHARS = 300
PRAISE_ENTRIES = 3

STRING_NAMES = frozenset(
    {
        "checkin", "goals_intro", "more_goals", "titles", "prompts", "situation",
        "behaviour", "impact", "instead", "praise_entry", "encouragement", "norm",
    }
)  # fmt: skip
_KINDS = (MeetingKind.ONE_ON_ONE, MeetingKind.TEAM)
_EXTENSIONS = {TextFormat.TEXT: "txt", TextFormat.HTML: "html"}
_CACHE_SIZE = 4096
_BLANK_RUNS = re.compile(r"\n{3,}")

# Everything a rendered body depends on: the cache key.
_Key = tuple[TextFormat, str, str, str | None, str, tuple[str, ...], bool, str | None, bool, bool]


def structure_template_name(kind: str, fmt: TextFormat) -> str:
    """The template file for a meeting kind (``one_on_one``/``team``) and format."""
    return f"{kind}.{_EXTENSIONS[fmt]}.j2"


class AgendaRenderer:
    """Renders agenda block bodies; build one per process and share it.

    ``admin_template_dir`` overrides our templates by name. Construction
    compiles every template and renders each one once with worst-case input,
    so a broken admin template is a :class:`~feedback_agendas.agendas.errors.ConfigError` at
    start-up, not in the middle of a sync. ``opt_out_marker`` is removed from
    goals and norm text so an agenda never opts its own event out.
    ``fingerprint`` changes whenever a template's source changes.
    """

    def __init__(
        self,
        admin_template_dir: pathlib.Path | None = None,
        *,
        opt_out_marker: str = OptOut().marker,
        clock: Clock | None = None,
    ) -> None:
        loaders: list[BaseLoader] = [PackageLoader("feedback_agendas.templates", "agenda")]
        if admin_template_dir is not None:
            loaders.insert(0, FileSystemLoader(str(admin_template_dir)))
        self._env = BoundedSandbox(
            clock=clock,
            loader=ChoiceLoader(loaders),
            undefined=StrictUndefined,
            autoescape=lambda name: bool(name and name.endswith(".html.j2")),
            trim_blocks=True,
            lstrip_blocks=True,
            # Templates are read once; never stat them again while rendering.
            auto_reload=False,
        )
        self._opt_out = re.compile(re.escape(opt_out_marker.strip()), re.IGNORECASE)
        self._opt_out_folded = opt_out_marker.strip().casefold()
        self._cache: dict[_Key, str] = {}
        problems: list[str] = []
        self._strings = self._load_strings(problems)
        self._templates = self._load_structures(problems)
        self._self_check(problems)  # the templates that loaded, so every problem shows at once
        if problems:
            raise ConfigError(problems)
        self.fingerprint = self._fingerprint()

    # --- rendering -------------------------------------------------------

    def render_block(self, plan: AgendaPlan, fmt: TextFormat) -> str:
        """The block body (no markers) for ``plan`` in ``fmt``.

        Raises ``ValueError`` for a team agenda with a corrective slot:
        correction is given one to one only (R4), whatever the caller says.
        """
        if plan.kind is MeetingKind.TEAM and plan.slot.corrective:
            raise ValueError("a team agenda never carries a corrective slot (R4)")
        if plan.kind not in _KINDS:
            raise ValueError(f"no agenda for meeting kind {plan.kind.value!r}")
        key: _Key = (
            fmt, plan.kind.value, plan.slot.value, plan.team, plan.locale, plan.goals,
            plan.norm_enabled, plan.norm_text, plan.trust_checkin, plan.positive_only,
        )  # fmt: skip
        body = self._cache.get(key)
        if body is None:
            body = self._render_key(key)
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = body
        return body

    def _render_key(self, key: _Key) -> str:
        fmt, kind, slot, team, locale, goals, norm_enabled, norm_text, trust, positive = key
        strings = self._strings[self._resolve_locale(locale)]
        shown = [g for g in (self._clean(goal, MAX_GOAL_CHARS) for goal in goals) if g]
        hidden = max(0, len(shown) - MAX_GOALS)
        shown = shown[:MAX_GOALS]
        norm: str | None = None
        if norm_enabled:
            norm = (self._clean(norm_text, MAX_NORM_CHARS) if norm_text else "") or strings["norm"]
        context: dict[str, Any] = {
            "t": strings,
            "kind": kind,
            "slot": slot,
            "corrective": SlotKind(slot).corrective,
            "team": team,
            "locale": locale,
            "trust_checkin": trust,
            "positive_only": positive,
            "placeholder": PLACEHOLDER,
            "praise_entries": PRAISE_ENTRIES,
        }
        template = self._templates[structure_template_name(kind, fmt)]
        limit = max_body_chars(fmt)
        while True:
            body = self._render(template, fmt, {**context, "goals": shown, "more_goals": hidden,
                                                "norm": norm})  # fmt: skip
            if len(body) <= limit:
                break
            # Too long: drop goals from the end, then shorten a reworded norm.
            if shown:
                shown, hidden = shown[:-1], hidden + 1
            elif norm and norm != strings["norm"] and len(norm) > 40:
                norm = _shorten(norm, len(norm) // 2)
            else:
                raise TemplateFailed(
                    _template_name(template),
                    f"the agenda is {len(body)} characters; the limit is {limit}",
                )
        self._check_body(template, body)
        return body

    def _render(self, template: Template, fmt: TextFormat, context: Mapping[str, Any]) -> str:
        """Render within the sandbox's limits; any failure is a :class:`TemplateFailed`."""
        try:
            raw = self._env.render(template, context)
        except Exception as exc:  # any error in an admin template, of any type
            raise TemplateFailed(_template_name(template), _reason(exc, template)) from exc
        if fmt == TextFormat.HTML:
            # Google shows raw newlines as line breaks: the HTML form has none.
            return "".join(line.strip() for line in raw.splitlines())
        text = "\n".join(line.rstrip() for line in raw.splitlines())
        return _BLANK_RUNS.sub("\n\n", text).strip("\n")

    def _check_body(self, template: Template, body: str) -> None:
        if contains_marker(body) or (
            self._opt_out_folded and self._opt_out_folded in body.casefold()
        ):
            raise TemplateFailed(
                _template_name(template),
                "an agenda may not contain a block marker or the opt-out marker",
            )

    def _clean(self, text: str, limit: int) -> str:
        """Configured text made safe for a block: one line, no markers, not too long."""
        previous = None
        while previous != text:  # removing one marker may reveal another
            previous = text
            if self._opt_out_folded:
                text = self._opt_out.sub("", text)
            text = strip_markers(text)
        return _shorten(" ".join(text.split()), limit)

    def _resolve_locale(self, locale: str) -> str:
        wanted = locale.strip().lower().replace("-", "_")
        if wanted in self._strings:
            return wanted
        base = wanted.partition("_")[0]
        return base if base in self._strings else DEFAULT_LOCALE

    # --- loading and checking --------------------------------------------

    def _load_strings(self, problems: list[str]) -> dict[str, dict[str, Any]]:
        names = [
            name
            for name in self._env.list_templates(extensions=["j2"])
            if name.startswith("strings/") and name.count("/") == 1
        ]
        strings: dict[str, dict[str, Any]] = {}
        for name in sorted(names):
            locale = name.removeprefix("strings/").removesuffix(".j2").lower().replace("-", "_")
            try:
                with self._env.budget():  # reading the module runs the template's top level
                    module = self._env.get_template(name).module
            except Exception as exc:  # any error in an admin template, of any type
                problems.append(_describe(name, exc))
                continue
            values = {k: v for k, v in vars(module).items() if not k.startswith("_")}
            missing = sorted(STRING_NAMES - values.keys())
            if missing:
                problems.append(f"{name}: missing {', '.join(missing)}")
                continue
            for table in ("titles", "prompts"):
                if not isinstance(values[table], Mapping):
                    problems.append(f"{name}: {table} must be a mapping of slot names")
                    continue
                absent = sorted({s.value for s in SlotKind} - set(values[table]))
                if absent:
                    problems.append(f"{name}: {table} lacks {', '.join(absent)}")
            strings[locale] = values
        if DEFAULT_LOCALE not in strings and not problems:
            problems.append(f"strings/{DEFAULT_LOCALE}.j2: not found")
        return strings

    def _load_structures(self, problems: list[str]) -> dict[str, Template]:
        templates: dict[str, Template] = {}
        for kind in _KINDS:
            for fmt in TextFormat:
                name = structure_template_name(kind.value, fmt)
                try:
                    templates[name] = self._env.get_template(name)
                except Exception as exc:  # a syntax error, or a parser gone too deep
                    problems.append(_describe(name, exc))
        return templates

    def _self_check(self, problems: list[str]) -> None:
        """Render every template and locale once with the longest inputs we accept."""
        goals = tuple("goal " * (MAX_GOAL_CHARS // 5) for _ in range(MAX_GOALS + 1))
        over_a_limit: set[str] = set()  # once is enough: each render could take the time limit
        for fmt in TextFormat:
            for locale in sorted(self._strings):
                for kind, slots in (
                    (MeetingKind.ONE_ON_ONE, (SlotKind.WELL, SlotKind.BETTER, SlotKind.STOP)),
                    (MeetingKind.TEAM, (SlotKind.PRAISE,)),
                ):
                    name = structure_template_name(kind.value, fmt)
                    if name not in self._templates:
                        continue  # it failed to load: already a problem
                    for slot in slots:
                        if name in over_a_limit:
                            break
                        key: _Key = (
                            fmt, kind.value, slot.value, "team", locale, goals,
                            True, None, True, True,
                        )  # fmt: skip
                        try:
                            self._render_key(key)
                        except ConfigError as exc:  # TemplateFailed: names the template
                            problems.extend(p for p in exc.problems if p not in problems)
                            if isinstance(exc.__cause__, TemplateLimitExceeded):
                                over_a_limit.add(name)
                        except Exception as exc:  # our own code around the templates
                            problem = _describe(name, exc)
                            if problem not in problems:
                                problems.append(problem)

    def _fingerprint(self) -> str:
        digest = hashlib.sha256()
        names = sorted([*self._templates, *(f"strings/{loc}.j2" for loc in self._strings)])
        loader = self._env.loader
        assert loader is not None
        for name in names:
            source, _, _ = loader.get_source(self._env, name)
            digest.update(name.encode() + b"\0" + source.encode() + b"\0")
        return digest.hexdigest()[:16]


def _shorten(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters at a word boundary, with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-–") + "…"


def _template_name(template: Template) -> str:
    """The file an admin edits (its full path), or our template's name."""
    return template.filename or template.name or "template"


def _reason(exc: BaseException, template: Template) -> str:
    """Why ``template`` failed, one line, with the template line when we know it."""
    if isinstance(exc, TemplateSyntaxError):
        return f"line {exc.lineno}: {exc.message}"
    line = None
    traceback = exc.__traceback__
    while traceback is not None:  # Jinja maps template frames to template lines
        if traceback.tb_frame.f_code.co_filename == template.filename:
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    kind = "over a limit" if isinstance(exc, TemplateLimitExceeded) else type(exc).__name__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    reason = f"{kind}: {text[:200]}" if text else kind
    return f"line {line}: {reason}" if line else reason


def _describe(name: str, exc: BaseException) -> str:
    if isinstance(exc, TemplateSyntaxError):
        return f"{exc.filename or name}:{exc.lineno}: {exc.message}"
    if isinstance(exc, TemplateFailed):
        return str(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    kind = "over a limit" if isinstance(exc, TemplateLimitExceeded) else type(exc).__name__
    return f"{name}: {kind}: {text[:200]}" if text else f"{name}: {kind}"
