"""One output area redrawn in place: a Jupyter display in a kernel, printed text elsewhere."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

Render = Callable[[str], None]
"""Receives the whole text of a view each time it changes."""


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:  # a script on the local-only environment (no notebook group)
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def as_html(text: str) -> str:
    """``text`` as a preformatted HTML block (tables of fixed-width columns keep their shape)."""
    return f"<pre style='font-size: 12px; line-height: 1.3'>{html.escape(text)}</pre>"


class LiveView:
    """A view redrawn in place while something runs.

    In a Jupyter kernel (JupyterLab, VS Code, nbclient) it is one display updated through its ``display_id``, so
    the saved notebook keeps the last state; elsewhere each new text is printed.
    """

    def __init__(self) -> None:
        self._handle: Any = None
        self._last: str | None = None
        self._kernel = _in_kernel()

    def __call__(self, text: str) -> None:
        """Show ``text`` (nothing happens if it did not change)."""
        if text == self._last:
            return
        self._last = text
        if not self._kernel:
            print(text, flush=True)
            return
        from IPython.display import display

        bundle = {"text/plain": text, "text/html": as_html(text)}
        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)  # type: ignore[no-untyped-call]
        else:
            self._handle.update(bundle, raw=True)

    @property
    def text(self) -> str | None:
        """What the view shows now."""
        return self._last
