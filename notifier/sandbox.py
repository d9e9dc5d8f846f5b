"""The bounds of a template render: support staff edit templates, so they are untrusted input
to the sender, and no template may hang it or eat its memory.

Owns :class:`BoundedEnvironment` — Jinja2's immutable sandbox plus:

- ``range`` that draws from one budget per render (``LOOP_BUDGET`` iterations in all, so
  nested loops cannot multiply), whoever calls it and for whatever data;
- ``*`` and ``**`` that refuse to build a text or list longer than ``MAX_REPEAT`` or a
  number with more than ``MAX_DIGITS`` digits;
- :meth:`BoundedEnvironment.run`: the output is gathered chunk by chunk and refused past
  ``MAX_OUTPUT`` characters, and on the main thread a deadline (``DEADLINE`` seconds, by
  SIGALRM) stops a render whatever it is doing.

Each bound raises :class:`TemplateTooBig` with a sentence for the person who edits the
template; ``rendering`` adds the file and line. It knows nothing of notifier's templates.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

from jinja2 import Template
from jinja2.sandbox import ImmutableSandboxedEnvironment

LOOP_BUDGET = 100_000  # loop iterations over range() in one render, all loops together
MAX_REPEAT = 100_000  # characters (or items) a * may build
MAX_DIGITS = 1_000  # digits a ** may build
MAX_OUTPUT = 1_000_000  # characters one template may render
DEADLINE = 2.0  # seconds one render may take (main thread only: SIGALRM)


class TemplateTooBig(Exception):
    """A template went past one of the render's bounds (``lineno``: where, when known here)."""

    def __init__(self, message: str, lineno: int | None = None) -> None:
        super().__init__(message)
        self.lineno = lineno


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._local = threading.local()  # each thread's render has its own budget
        self.globals["range"] = self._range

    @property
    def _budget(self) -> int:
        return getattr(self._local, "budget", LOOP_BUDGET)

    @_budget.setter
    def _budget(self, value: int) -> None:
        self._local.budget = value

    def _range(self, *args: int) -> Iterator[int]:
        numbers = range(*args)
        if len(numbers) > self._budget:
            raise TemplateTooBig(f"a loop of {len(numbers):,} steps is more than a template may run "
                                 f"({LOOP_BUDGET:,} loop steps in all)")  # fmt: skip
        return self._draw(numbers)

    def _draw(self, numbers: range) -> Iterator[int]:
        for number in numbers:
            self._budget -= 1
            if self._budget < 0:
                raise TemplateTooBig(f"its loops run more than {LOOP_BUDGET:,} steps in all")
            yield number

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int) and len(seq) * times > MAX_REPEAT:
                    raise TemplateTooBig(f"it repeats something {times:,} times, more than {MAX_REPEAT:,} "
                                         "characters or items")  # fmt: skip
        power = operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1
        if power and right * max(len(str(abs(left))), 1) > MAX_DIGITS:
            raise TemplateTooBig(f"{left} ** {right} has more than {MAX_DIGITS:,} digits")
        return super().call_binop(context, operator, left, right)

    def run(self, template: Template, context: dict[str, Any]) -> str:
        """Render ``template`` within the bounds; TemplateTooBig when it goes past one."""
        self._budget = LOOP_BUDGET
        out: list[str] = []
        size = 0
        with _deadline(DEADLINE):
            chunks = template.generate(context)
            for chunk in chunks:
                size += len(chunk)
                if size > MAX_OUTPUT:
                    line = _current_line(template, chunks)
                    chunks.close()
                    raise TemplateTooBig(f"it renders more than {MAX_OUTPUT:,} characters", line)
                out.append(chunk)
        return "".join(out)


def _current_line(template: Template, chunks: Any) -> int | None:
    """The template line a suspended render is at: the innermost generator's line, mapped back."""
    while getattr(chunks, "gi_yieldfrom", None) is not None:
        chunks = chunks.gi_yieldfrom
    frame = getattr(chunks, "gi_frame", None)
    return template.get_corresponding_lineno(frame.f_lineno) if frame is not None else None


def _expired(signum: int, frame: Any) -> None:
    raise TemplateTooBig(f"it took more than {DEADLINE:g} s to render")


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """SIGALRM after ``seconds`` raises TemplateTooBig in the render (main thread only: elsewhere
    the loop and size bounds still hold). The handler is installed once, when SIGALRM has none
    of its own; then a render costs two ``setitimer`` calls, not a handler swap."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return
    current = signal.getsignal(signal.SIGALRM)
    if current is not _expired:
        if current not in (signal.SIG_DFL, None):
            yield  # someone else uses SIGALRM: leave it to them
            return
        signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
