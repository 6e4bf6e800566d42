"""The Jinja environment every template is analysed and filled with: sandboxed, bounded, compiled once.

Uploaded templates are code their authors wrote, so they run in Jinja's immutable sandbox: no
``_``-prefixed or internal attributes (``cycler.__init__.__globals__`` is refused), no calls that
mutate values. The sandbox alone does not stop a template from running for ever or eating memory,
so each document's fill also has a budget (``fill_budget``):

- at most ``MAX_LOOP_ITERATIONS`` ``{% for %}`` iterations in all, nested loops included, and
  ``FILL_SECONDS`` of wall-clock time checked at each iteration;
- ``range()`` of at most ``MAX_RANGE`` items;
- ``*`` repeating a string or list to at most ``MAX_REPEAT`` items, ``**`` up to ``MAX_POWER_BITS``;
  padding (``center``, ``ljust``, ``'%9999999s'``, ``'{:>9999999}'``...) to widths below ``MAX_REPEAT``;
- at most ``MAX_OUTPUT_CHARS`` of output per document part.

Going over any of them raises ``jinja2.sandbox.SecurityError``; the renderer turns that into a
typed ``render_failed`` error for that one document.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

MAX_LOOP_ITERATIONS = 1_000_000
FILL_SECONDS = 30.0
MAX_RANGE = 100_000
MAX_REPEAT = 1_000_000
MAX_POWER_BITS = 4096
MAX_OUTPUT_CHARS = 64 * 1024 * 1024
_LOOP_FILTER = "kiln_bounded_loop"
_PADDING_METHODS = frozenset(("center", "ljust", "rjust", "zfill", "expandtabs"))
# Format strings may be row values, so these must not backtrack (the old '\{[^{}]*:[^{}]*\{' took
# seconds on '{' + ':' * 20000): the part before the first ':' is matched possessively without ':'.
_NESTED_SPEC = re.compile(r"\{[^{}:]*+:[^{}]*+\{")  # '{:{}}': a width taken from the arguments
_WIDE_PERCENT = re.compile(r"%[-#0 +]*+\d{7}")  # '%9999999s': a width of a million or more
_SPEC = re.compile(r"\{[^{}:]*+:([^{}]*+)\}")  # the format spec of each '{...:spec}'
_SEVEN_DIGITS = re.compile(r"\d{7}")


@dataclass
class _Budget:
    iterations: int
    deadline: float

    @classmethod
    def fresh(cls) -> _Budget:
        return cls(MAX_LOOP_ITERATIONS, time.monotonic() + FILL_SECONDS)


_BUDGET: ContextVar[_Budget | None] = ContextVar("kiln_fill_budget", default=None)


@contextmanager
def fill_budget() -> Iterator[None]:
    """One document's budget: every part (body, headers, footers) of the fill shares it."""
    token = _BUDGET.set(_Budget.fresh())
    try:
        yield
    finally:
        _BUDGET.reset(token)


def _bounded_loop(iterable: Iterable) -> Iterator:
    budget = _BUDGET.get() or _Budget.fresh()
    for item in iterable:
        budget.iterations -= 1
        if budget.iterations < 0:
            raise SecurityError(f"The template loops more than {MAX_LOOP_ITERATIONS:,} times for one document.")
        if time.monotonic() > budget.deadline:
            raise SecurityError(f"The template takes longer than {FILL_SECONDS:g} s to fill one document.")
        yield item


def _bounded_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise SecurityError(f"range() may produce at most {MAX_RANGE:,} numbers in a template.")
    return numbers


def _check_width(width: Any) -> None:
    if isinstance(width, int) and width > MAX_REPEAT:
        raise SecurityError(f"Padding to a width over {MAX_REPEAT:,} is not allowed in a template.")


def _check_format(fmt: Any, args: Any = ()) -> None:
    """Literal widths in the format string, and widths taken from the arguments (``%*s``, ``{:{}}``)."""
    if not isinstance(fmt, str):
        return
    if _WIDE_PERCENT.search(fmt) or any(_SEVEN_DIGITS.search(m.group(1)) for m in _SPEC.finditer(fmt)):
        raise SecurityError(f"Format widths over {MAX_REPEAT:,} are not allowed in a template.")
    if "*" in fmt or _NESTED_SPEC.search(fmt):
        values = args.values() if isinstance(args, dict) else args if isinstance(args, (tuple, list)) else (args,)
        for value in values:
            _check_width(value)


def _check_replace(text: Any, args: tuple) -> None:
    if not isinstance(text, str) or len(args) < 2 or not isinstance(args[0], str) or not isinstance(args[1], str):
        return
    old, new = args[0], args[1]
    count = args[2] if len(args) > 2 and isinstance(args[2], int) and args[2] >= 0 else None
    hits = text.count(old) if old else len(text) + 1
    if count is not None:
        hits = min(hits, count)
    if len(text) + hits * (len(new) - len(old)) > MAX_REPEAT:
        raise SecurityError(f"Replacing would produce more than {MAX_REPEAT:,} characters.")


def _bounded_filters(filters: dict) -> None:
    center, indent, format_ = filters["center"], filters["indent"], filters["format"]

    def do_center(value, width=80):
        _check_width(width)
        return center(value, width)

    def do_indent(s, width=4, first=False, blank=False):
        _check_width(width)
        return indent(s, width, first, blank)

    def do_format(value, *args, **kwargs):
        _check_format(value, kwargs or args)
        return format_(value, *args, **kwargs)

    replace = filters["replace"]

    @jinja2.pass_eval_context
    def do_replace(eval_ctx, s, old, new, count=None):
        _check_replace(str(s), (str(old), str(new)) + (() if count is None else (count,)))
        return replace(eval_ctx, s, old, new, count)

    filters.update(center=do_center, indent=do_indent, format=do_format, replace=do_replace)


def _bounded_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002 - Jinja's names
    if not all(isinstance(v, int) for v in (n, min, max)) or n > 100 or max > 1000 or min > max:
        raise SecurityError("lipsum() is limited to 100 paragraphs of at most 1,000 words.")
    from jinja2.utils import generate_lorem_ipsum

    return generate_lorem_ipsum(n=n, html=html, min=min, max=max)


def _bounded_concat(chunks: Iterable[str]) -> str:
    out: list[str] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_OUTPUT_CHARS:
            raise SecurityError(f"The filled document part would exceed {MAX_OUTPUT_CHARS // (1024 * 1024)} MiB.")
        out.append(chunk)
    return "".join(out)


def _none_as_empty(value: Any) -> Any:
    return "" if value is None else value


class DocumentEnvironment(ImmutableSandboxedEnvironment):
    """Autoescaping, sandboxed, bounded; compiles each distinct part source once.

    docxtpl calls ``from_string`` for every part on every render; a template's parts are the same
    for every row of a bulk run, so compiling them again per row is pure waste (about a third of a
    render). Compiled templates are immutable; the cache is bounded.
    """

    _MAX_CACHED = 256
    intercepted_binops = frozenset({"*", "**", "%"})
    concat = staticmethod(_bounded_concat)

    def __init__(self) -> None:
        # finalize: a None value (JSON null, an empty XLSX cell) prints as nothing, not "None".
        super().__init__(autoescape=True, finalize=_none_as_empty)
        self.globals["range"] = _bounded_range
        self.globals["lipsum"] = _bounded_lipsum
        self.filters[_LOOP_FILTER] = _bounded_loop
        _bounded_filters(self.filters)
        self._compiled: dict[str, jinja2.Template] = {}
        self._compiled_lock = threading.Lock()

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(times, int) and len(seq) * times > MAX_REPEAT:
                    raise SecurityError(f"Repeating a value with '*' may produce at most {MAX_REPEAT:,} items.")
        elif operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
            if max(abs(left).bit_length(), 1) * right > MAX_POWER_BITS and abs(left) > 1:
                raise SecurityError("The number computed with '**' is too large.")
        elif operator == "%":
            _check_format(left, right)
        return super().call_binop(context, operator, left, right)

    def call(self, context, obj, /, *args, **kwargs):
        if isinstance(getattr(obj, "__self__", None), str):
            method = getattr(obj, "__name__", "")
            if method in _PADDING_METHODS:
                _check_width(args[0] if args else None)
            elif method == "replace":
                _check_replace(obj.__self__, args)
        return super().call(context, obj, *args, **kwargs)

    def wrap_str_format(self, value: Any):
        # str.format / format_map are swapped for the sandbox's formatter at attribute access, so
        # ``call`` never sees them: the argument check (widths like '{:{}}') wraps that formatter.
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt, is_format_map = value.__self__, value.__name__ == "format_map"
        _check_format(fmt)

        def checked(*args: Any, **kwargs: Any) -> str:
            _check_format(fmt, (args[0] if args else {}) if is_format_map else (*args, *kwargs.values()))
            return wrapped(*args, **kwargs)

        return checked

    def _generate(self, source: nodes.Template, name, filename, defer_init: bool = False) -> str:
        # Jinja's documented hook between parsing and code generation: every loop's iterable goes
        # through the budgeted iterator. The tree is the one ``from_string`` just parsed; the
        # analysis parses its own.
        for loop in source.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, _LOOP_FILTER, [], [], None, None, lineno=loop.iter.lineno)
        source.set_environment(self)
        return super()._generate(source, name, filename, defer_init=defer_init)

    def from_string(self, source, globals=None, template_class=None):  # Jinja's signature
        if globals or template_class or not isinstance(source, str):
            return super().from_string(source, globals, template_class)
        with self._compiled_lock:
            compiled = self._compiled.get(source)
        if compiled is None:
            compiled = super().from_string(source)
            with self._compiled_lock:
                if len(self._compiled) >= self._MAX_CACHED:
                    self._compiled.pop(next(iter(self._compiled)))
                self._compiled[source] = compiled
        return compiled


ENV = DocumentEnvironment()


class _AnyName(dict):
    """Filters or tests that know every name, so fields are still listed when an unknown one is
    reported (Jinja's code generator, which finds the fields, stops at an unknown filter)."""

    def get(self, key, default=None):
        return super().get(key, _unknown)


def _unknown(*args, **kwargs):
    raise jinja2.TemplateRuntimeError("unknown filter or test")


# Sandboxed and bounded too: Jinja evaluates constant expressions ({{ 7 ** 999999999 }}) while listing.
_LISTING_ENV = DocumentEnvironment()
_LISTING_ENV.filters = _AnyName(_LISTING_ENV.filters)
_LISTING_ENV.tests = _AnyName(_LISTING_ENV.tests)


def undeclared_names(tree: nodes.Template) -> set[str]:
    """``meta.find_undeclared_variables`` for a tree ``ENV.parse`` made, tolerating unknown filters and
    tests (the analysis reports them itself) and folding no constant the sandbox would not."""
    tree.set_environment(_LISTING_ENV)
    tracker = meta.TrackingCodeGenerator(_LISTING_ENV)
    tracker.optimizer = None
    tracker.visit(tree)
    return tracker.undeclared_identifiers
