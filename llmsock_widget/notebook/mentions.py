"""Mentions: the kernel's names for the chat's ``@name`` completion, and the summary of one.

A view asks over the widget's comm (docs/widget-comm.md, section 3): ``complete`` lists the
names of the user's namespace that start with a prefix, ``describe`` summarizes one value with
``llmsock_widget.context.summarize`` (size-capped, secret-looking names masked).  Both run on
the thread that handles the comm, which is a kernel subshell while a cell runs on the main
thread: so they only read.  The namespace is copied in one step (a dict copy holds the GIL
throughout, so a cell that adds names meanwhile cannot break it), no value is changed, and no
code of the user's runs here except what ``summarize`` runs (a repr, ``.head()``, ``.shape``).

A prompt sent from Python (``%%llmsock``, ``ask()``, ``Chat.send``) gets its mentions' summaries
as the widget sends them (``attachments``; js/src/attachments.js has the same rules): each
distinct ``@name`` of its prose (not in code) that names a variable, at most 8, each text at most
8,000 characters.
"""

from __future__ import annotations

import re
from typing import Any

from ..context import summarize
from ..context.summary import kind_of
from .namespace import copy_of, is_user_variable

MAX_COMPLETIONS = 50
"""The most names one ``completions`` answer lists."""
MAX_NAME = 200  # characters of a prefix or a name a view may ask about
MAX_ID = 64  # characters of a request's id echoed back
MAX_ATTACHMENTS = 8  # attachments one prompt carries (docs/protocol.md, section 7.1)
MAX_ATTACHMENT_CHARS = 8000  # characters of one attachment's text
CUT_NOTE = "\n… (cut at 8,000 characters)"  # what ends a text cut to MAX_ATTACHMENT_CHARS

# A mention: `@` and an identifier, not glued to a word, an `@` or a dot before it (so
# `me@example.org` is not one); code (a fenced block, an inline span) holds none.
_MENTION = re.compile(r"(?<![\w@.])@([^\W\d]\w{0,127})")
_CODE = re.compile(r"```[\s\S]*?(?:```|$)|`[^`\n]*`")


def user_namespace(shell: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return copies of the user's namespace and of what IPython hides in it (``In``, ``exit``...)."""
    if shell is None:
        shell = _running_shell()
    names = getattr(shell, "user_ns", None)
    hidden = getattr(shell, "user_ns_hidden", None)
    return copy_of(names), copy_of(hidden)


def completions(
    prefix: str, namespace: dict[str, Any], hidden: dict[str, Any] | None = None
) -> list[dict[str, str]]:
    """Return the names that start with ``prefix`` (any case) and their kinds, sorted, at most 50.

    Names that start with ``_``, modules, and IPython's own names (``In``, ``exit``: hidden as
    ``%who`` hides them, unless the user gave the name a value of their own) are left out: they
    are not what a user mentions.
    """
    hidden = hidden or {}
    wanted = prefix.lower()
    names = sorted(
        (
            name
            for name in namespace
            if name.lower().startswith(wanted) and is_user_variable(name, namespace[name], hidden)
        ),
        key=lambda name: (name.lower(), name),
    )
    return [{"name": name, "kind": _kind(namespace[name])} for name in names[:MAX_COMPLETIONS]]


def describe(name: str, namespace: dict[str, Any], hidden: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return ``{"name", "ok": True, "text"}``: the summary of ``name``'s value (else ok False, a message)."""
    if name not in namespace or not is_user_variable(name, namespace[name], hidden or {}):
        return {"name": name, "ok": False, "message": f"no variable {name!r} in the kernel"}
    return {"name": name, "ok": True, "text": summarize(name=name, value=namespace[name]).text}


def mentioned_names(text: str) -> list[str]:
    """Return the distinct names ``text`` mentions (``@name``), in order, code left out."""
    prose = _CODE.sub(" ", text)
    return list(dict.fromkeys(match.group(1) for match in _MENTION.finditer(prose)))


def attachments(text: str, shell: Any = None) -> list[dict[str, str]]:
    """Return the attachments of a prompt: ``{"name", "text"}`` for each variable it mentions.

    A mentioned name that is no variable (``@everyone``) is ordinary text. At most
    :data:`MAX_ATTACHMENTS`; a longer summary is cut with :data:`CUT_NOTE`.
    """
    names = mentioned_names(text)
    if not names:
        return []
    namespace, hidden = user_namespace(shell)
    found = []
    for name in names:
        described = describe(name, namespace, hidden)
        if described["ok"]:
            summary = described["text"]
            if len(summary) > MAX_ATTACHMENT_CHARS:
                summary = summary[: MAX_ATTACHMENT_CHARS - len(CUT_NOTE)] + CUT_NOTE
            found.append({"name": name, "text": summary})
            if len(found) == MAX_ATTACHMENTS:
                break
    return found


def answer(content: dict[str, Any], shell: Any = None) -> dict[str, Any] | None:
    """Return the answer to a view's ``complete`` or ``describe`` message, or None for another message."""
    kind = content.get("type")
    if kind not in ("complete", "describe"):
        return None
    request_id = content.get("id")
    known = isinstance(request_id, str) and len(request_id) <= MAX_ID
    reply: dict[str, Any] = {"id": request_id if known else None}
    namespace, hidden = user_namespace(shell)
    if kind == "complete":
        prefix = content.get("prefix")
        prefix = prefix if isinstance(prefix, str) and len(prefix) <= MAX_NAME else ""
        return {"type": "completions", **reply, "names": completions(prefix, namespace, hidden)}
    name = content.get("name")
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
        return {"type": "description", **reply, "name": "", "ok": False, "message": "no name to describe"}
    return {"type": "description", **reply, **describe(name, namespace, hidden)}


def _kind(value: object) -> str:
    """Return the kind a completion shows: the summary's kind, or the type's name for a plain object."""
    try:
        kind = kind_of(value)
    except Exception:  # isinstance() reads __class__, which a user's class may make raise
        kind = "object"
    return type(value).__name__ if kind == "object" else kind


def _running_shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # plain Python: no namespace to offer
        return None
    return get_ipython()
