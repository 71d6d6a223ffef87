"""Prompt templates: the words the LLM reasoner sends live in files, not in code.

Each prompt is a Markdown file in `llm/prompts/` (package data), filled in with
`string.Template` (`$name` placeholders). They are short on purpose: the packaged local
model has a context of a few thousand tokens. No template names a service, operation or
dataset; the values filled in at run time carry the incident's own names.
"""

from __future__ import annotations

from importlib.resources import files
from string import Template

from tracehound.errors import TracehoundError

PACKAGE = "tracehound.llm"
FOLDER = "prompts"


def template_text(name: str) -> str:
    """The raw text of template `name` (`prompts/<name>.md`)."""
    resource = files(PACKAGE).joinpath(FOLDER, f"{name}.md")
    try:
        return resource.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise TracehoundError(
            f"prompt template {name!r} not found (llm/{FOLDER}/{name}.md); this installation "
            "of tracehound lacks its package data llm/prompts/*, reinstall it"
        ) from None


def render(name: str, **values: str) -> str:
    """Template `name` with every `$placeholder` replaced by `values`, stripped.

    A missing template or a placeholder without a value is a `TracehoundError` naming it
    (a bug or a broken installation, not a model failure: it must not be hidden by the
    reasoner's fallback to the rules).
    """
    text = template_text(name)
    try:
        return Template(text).substitute(values).strip()
    except KeyError as exc:
        raise TracehoundError(
            f"prompt template {name!r} needs a value for ${exc.args[0]}"
        ) from None
    except ValueError as exc:
        raise TracehoundError(f"prompt template {name!r} is malformed: {exc}") from None
