"""Report renderers for an `Investigation` (ARCHITECTURE §6): text (rich), Markdown, JSON
and a self-contained HTML page.

`render(investigation, fmt)` returns the report as a string; `print_text` prints the text
report to a rich console, in colour when the console is a terminal.
"""

from __future__ import annotations

from collections.abc import Callable

from tracehound.errors import BadInput
from tracehound.investigation import Investigation
from tracehound.report.html import render_html
from tracehound.report.json import render_json, report_object
from tracehound.report.markdown import render_markdown
from tracehound.report.text import print_text, render_text

__all__ = [
    "FORMATS",
    "print_text",
    "render",
    "render_html",
    "render_json",
    "render_markdown",
    "render_text",
    "report_object",
]

_RENDERERS: dict[str, Callable[[Investigation], str]] = {
    "text": render_text,
    "md": render_markdown,
    "json": render_json,
    "html": render_html,
}
_ALIASES = {"markdown": "md", "txt": "text"}

#: The format names `render` accepts (`markdown` is an alias of `md`).
FORMATS = tuple(_RENDERERS)


def normalize_format(fmt: str) -> str:
    """The canonical name of a report format; `BadInput` for an unknown one."""
    name = _ALIASES.get(fmt.lower(), fmt.lower())
    if name not in _RENDERERS:
        raise BadInput(
            f"unknown report format {fmt!r}", column="--format", expected=", ".join(FORMATS)
        )
    return name


def render(investigation: Investigation, fmt: str) -> str:
    """The report in format `fmt` (text, md, json or html) as one string."""
    return _RENDERERS[normalize_format(fmt)](investigation)
