"""Which names and strings look secret, and masking them in text.

A name looks secret when one of its word parts is a secret word.  Word parts are what
``_``, ``-``, ``.``, spaces, digits and camelCase boundaries separate, lowercased:
``OPENAI_API_KEY`` -> ``openai api key``, ``dbPassword`` -> ``db password``.  The test is on
whole parts, so ``token``, ``auth_header`` and ``refreshToken`` are secret while ``tokenizer``,
``max_tokens``, ``author`` and ``monkey`` are not.  A few words that people glue together
(``apikey``, ``authtoken``, ``secretkey``) count as parts too.

A string looks secret when it holds a known credential format (OpenAI and Anthropic ``sk-``
keys, GitHub ``ghp_``/``github_pat_`` tokens, AWS ``AKIA`` key ids, Slack ``xoxb-`` tokens,
Google ``AIza`` keys, JSON Web Tokens, PEM private keys), or an assignment of a quoted value to
a secret-looking name (``password = "hunter2"``, ``'api_key': 'abc'``): the value is masked.
"""

from __future__ import annotations

import re

SECRET_WORDS = frozenset(
    {
        "key",
        "token",
        "password",
        "passwd",
        "pwd",
        "secret",
        "secrets",
        "credential",
        "credentials",
        "auth",
        "apikey",
        "authtoken",
        "accesstoken",
        "secretkey",
        "privatekey",
        "passphrase",
    }
)

NAME_MASK = "<masked: the name looks secret>"
VALUE_MASK = "<masked>"
SECRET_MASK = "<masked secret>"

_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATORS = re.compile(r"[^A-Za-z]+")

_SECRET_FORMATS = re.compile(
    r"sk-[A-Za-z0-9_\-]{16,}"  # OpenAI (sk-, sk-proj-), Anthropic (sk-ant-)
    r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"  # GitHub
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key ids
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}"  # Slack
    r"|AIza[0-9A-Za-z_\-]{30,}"  # Google API keys
    r"|eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"  # JSON Web Tokens
    r"|-----BEGIN[A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END[A-Z ]*PRIVATE KEY-----|$)"
)

# name = "value", name: 'value', "name": "value" (a dict's repr, a line of source, a config).
_ASSIGNMENT = re.compile(
    r"""(?<![\w.\-])(?P<name>[A-Za-z_][\w.\-]{0,100})(?P<close>['"]?)(?P<sep>\s*[:=]\s*)(?P<quote>['"])(?P<value>[^'"\n]*)(?P=quote)"""
)


def name_parts(name: str) -> list[str]:
    """Split ``name`` into its lowercased word parts."""
    return [part.lower() for part in _SEPARATORS.split(_CAMEL.sub(" ", name)) if part]


def looks_secret(name: str) -> bool:
    """Return whether ``name`` (a variable, a key, a column) looks like it holds a secret."""
    return any(part in SECRET_WORDS for part in name_parts(name))


def _mask_assignment(match: re.Match[str]) -> str:
    if not looks_secret(match["name"]) or not match["value"]:
        return match[0]
    quote = match["quote"]
    return f"{match['name']}{match['close']}{match['sep']}{quote}{VALUE_MASK}{quote}"


def mask_text(text: str) -> tuple[str, bool]:
    """Return ``text`` with secret-looking values masked, and whether anything was."""
    masked = _SECRET_FORMATS.sub(SECRET_MASK, text)
    masked = _ASSIGNMENT.sub(_mask_assignment, masked)
    return masked, masked != text
