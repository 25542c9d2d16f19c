"""Endpoint transformations: JSONata templates that reshape an event before delivery.

A transformation is a `JSONata <https://jsonata.org>`_ expression evaluated against the event
document ``{"type": ..., "payload": {...}, "metadata": {...}}``; its result is the body sent to the
endpoint. Examples::

    payload                                            → the payload unchanged
    {"event": type, "total": payload.amount / 100}     → a reshaped object
    {"text": "Invoice " & payload.id & " was paid"}    → a Slack-style message
    payload.items[price > 10].{"sku": sku, "qty": qty} → a filtered, projected list

Sandbox
-------
JSONata is declarative and has no I/O: an expression sees only the document. On top of that:

- templates are at most 16 KiB and are compiled when saved (:func:`compile_transformation`), so a
  syntax error is reported then, with the parser's message and position;
- evaluation is bounded in time (1 s by default) and in nesting depth (300 nested evaluations),
  checked at every evaluation step, so loops and runaway recursion stop with an error;
- intermediate values are bounded: strings at 256 Ki characters, lists and objects at 100,000
  items, ranges (``[1..n]``) at 100,000 items, ``$pad`` widths at 256 Ki;
- ``$eval`` (evaluating a string built at run time) is not available;
- regular-expression literals follow the filter rules (at most 256 characters, no nested
  quantifiers, ambiguous alternation under a quantifier or backreferences);
- the result must be JSON and at most 256 KiB serialized.

A single built-in call is not interrupted midway; the value caps above keep each one small.
:meth:`Transformation.apply` is synchronous and CPU-bound: call it from a worker thread
(``asyncio.to_thread``) when latency of the event loop matters.
"""

from __future__ import annotations

import copy
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from jsonata import JException, Jsonata  # type: ignore[import-untyped]
from jsonata.functions import Functions  # type: ignore[import-untyped]
from jsonata.regex_engine import RegexFlags  # type: ignore[import-untyped]

from interlink.core.errors import InterlinkError, ValidationFailed
from interlink.webhooks.filters import check_backtracking_regex

__all__ = [
    "MAX_DEPTH",
    "MAX_ITEMS",
    "MAX_OUTPUT_BYTES",
    "MAX_STRING_LENGTH",
    "MAX_TEMPLATE_LENGTH",
    "TIME_LIMIT_SECONDS",
    "Transformation",
    "TransformationError",
    "compile_transformation",
]

MAX_TEMPLATE_LENGTH = 16 * 1024
MAX_OUTPUT_BYTES = 256 * 1024
MAX_STRING_LENGTH = 256 * 1024
MAX_ITEMS = 100_000
MAX_DEPTH = 300
TIME_LIMIT_SECONDS = 1.0


class TransformationError(InterlinkError):
    """A transformation failed on a document (runtime error, limit exceeded, non-JSON result)."""

    status = 422
    code = "transformation-error"
    title = "Transformation failed"


class _Exceeded(Exception):
    """Raised from the evaluation hooks to abort; carries a readable reason."""


def _safe_regex(pattern: str, flags: RegexFlags) -> re.Pattern[str]:
    try:
        check_backtracking_regex(pattern)
    except ValueError as exc:
        raise _Exceeded(f"regular expression /{pattern}/ refused: {exc}") from None
    py_flags = (re.IGNORECASE if flags.case_insensitive else 0) | (re.MULTILINE if flags.multiline else 0)
    return re.compile(pattern, py_flags)


class _SafeFunctions(Functions):  # type: ignore[misc]
    """Built-ins replaced by bounded versions."""

    @staticmethod
    def pad(string: str | None, width: int | None, char: str | None) -> str | None:
        if isinstance(width, int | float) and abs(width) > MAX_STRING_LENGTH:
            raise _Exceeded(f"$pad width is larger than {MAX_STRING_LENGTH}")
        result: str | None = Functions.pad(string, width, char)
        return result

    @staticmethod
    def eval_disabled(expr: str | None, focus: Any = None) -> Any:
        raise _Exceeded("$eval is not available in transformations")


class _BoundedJsonata(Jsonata):  # type: ignore[misc]
    """The JSONata evaluator with a smaller range limit."""

    def evaluate_range_expression(self, lhs: Any, rhs: Any) -> Any:
        if (
            isinstance(lhs, int)
            and isinstance(rhs, int)
            and not isinstance(lhs, bool)
            and not isinstance(rhs, bool)
            and rhs - lhs + 1 > MAX_ITEMS
        ):
            raise _Exceeded(f"range [{lhs}..{rhs}] has more than {MAX_ITEMS} items")
        return super().evaluate_range_expression(lhs, rhs)


class _Guard:
    """Per-evaluation hooks: wall-clock deadline, nesting depth, size of every intermediate value."""

    def __init__(self, time_limit: float, max_depth: int) -> None:
        self.deadline = time.monotonic() + time_limit
        self.time_limit = time_limit
        self.max_depth = max_depth
        self.depth = 0

    def _check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise _Exceeded(f"evaluation took longer than {self.time_limit:g} s")

    def entry(self, expr: Any, input: Any, env: Any) -> None:
        if env.is_parallel_call:
            return
        self.depth += 1
        if self.depth > self.max_depth:
            raise _Exceeded(f"evaluation nested deeper than {self.max_depth} levels")
        self._check_time()

    def exit(self, expr: Any, input: Any, env: Any, result: Any) -> None:
        if not env.is_parallel_call:
            self.depth -= 1
        self._check_time()
        if isinstance(result, str):
            if len(result) > MAX_STRING_LENGTH:
                raise _Exceeded(f"a string grew longer than {MAX_STRING_LENGTH} characters")
        elif isinstance(result, list | dict) and len(result) > MAX_ITEMS:
            raise _Exceeded(f"a list or object grew larger than {MAX_ITEMS} items")


def _message(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    location = getattr(exc, "location", -1)
    if isinstance(location, int) and location > 0:
        text = f"{text} (at character {location})"
    return text


_UNSET = object()


def _set_current(value: Any) -> None:
    """Point the library's per-thread "current expression" at ``value`` (or clear it)."""
    if value is _UNSET:
        if hasattr(Jsonata.CURRENT, "jsonata"):
            del Jsonata.CURRENT.jsonata
    else:
        Jsonata.CURRENT.jsonata = value


@dataclass(frozen=True)
class Transformation:
    """A compiled template; :meth:`apply` may be called any number of times, from any thread."""

    template: str
    _expr: Any = field(repr=False, compare=False)
    time_limit: float = TIME_LIMIT_SECONDS
    max_depth: int = MAX_DEPTH
    max_output_bytes: int = MAX_OUTPUT_BYTES

    def apply(self, document: dict[str, Any]) -> Any:
        """Evaluate against ``document``; the JSON result (None when the expression yields nothing).

        Raises :class:`TransformationError` with a readable message on an evaluation error, when a
        limit is exceeded, or when the result is not JSON.
        """
        expr = copy.copy(self._expr)  # evaluation mutates the instance; one copy per call
        previous = getattr(Jsonata.CURRENT, "jsonata", _UNSET)
        _set_current(expr)
        guard = _Guard(self.time_limit, self.max_depth)
        frame = Jsonata.Frame(None)
        frame.set_evaluate_entry_callback(guard.entry)
        frame.set_evaluate_exit_callback(guard.exit)
        try:
            result = expr.evaluate(document, frame)
        except _Exceeded as exc:
            raise TransformationError(f"transformation stopped: {exc}") from None
        except JException as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, _Exceeded):
                raise TransformationError(f"transformation stopped: {cause}") from None
            raise TransformationError(f"transformation failed: {_message(exc)}") from None
        except RecursionError:
            raise TransformationError("transformation stopped: evaluation nested too deeply") from None
        except Exception as exc:  # the library's own errors are not all JException
            raise TransformationError(f"transformation failed: {_message(exc)}") from None
        finally:
            _set_current(previous)
        if result is None:
            return None
        try:
            encoded = json.dumps(result, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError):
            raise TransformationError(
                "transformation result is not JSON (a function or a non-finite number)"
            ) from None
        if len(encoded.encode()) > self.max_output_bytes:
            raise TransformationError(f"transformation result is larger than {self.max_output_bytes} bytes")
        return json.loads(encoded)


def compile_transformation(
    template: str,
    *,
    time_limit: float = TIME_LIMIT_SECONDS,
    max_depth: int = MAX_DEPTH,
    max_output_bytes: int = MAX_OUTPUT_BYTES,
) -> Transformation:
    """Compile ``template``; raises ``ValidationFailed(field="transformation")`` with the parser's message."""
    if not isinstance(template, str) or not template.strip():
        raise ValidationFailed(
            "transformation must be a non-empty JSONata expression", field="transformation"
        )
    if len(template) > MAX_TEMPLATE_LENGTH:
        raise ValidationFailed(
            f"transformation is longer than {MAX_TEMPLATE_LENGTH} characters", field="transformation"
        )
    previous = getattr(Jsonata.CURRENT, "jsonata", _UNSET)
    try:
        expr = _BoundedJsonata(template, _safe_regex)
    except _Exceeded as exc:
        raise ValidationFailed(str(exc), field="transformation") from None
    except JException as exc:
        cause = exc.__cause__ or exc.__context__
        detail = str(cause) if isinstance(cause, _Exceeded) else _message(exc)
        raise ValidationFailed(
            f"transformation is not valid JSONata: {detail}", field="transformation"
        ) from None
    except Exception as exc:  # the parser raises a few non-JException errors
        raise ValidationFailed(
            f"transformation is not valid JSONata: {_message(exc)}", field="transformation"
        ) from None
    finally:
        _set_current(previous)  # the constructor registers itself as the thread's current one
    if expr.errors:
        raise ValidationFailed(
            f"transformation is not valid JSONata: {_message(expr.errors[0])}", field="transformation"
        )
    expr.register_function(
        "eval", Jsonata.JNativeFunction("eval", "<sx?:x>", _SafeFunctions, "eval_disabled")
    )
    expr.register_function("pad", Jsonata.JNativeFunction("pad", "<s-ns?:s>", _SafeFunctions, "pad"))
    return Transformation(template, expr, time_limit, max_depth, max_output_bytes)
