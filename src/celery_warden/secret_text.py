"""Where a secret sits in free text: ``key=value`` pairs, URL passwords, bounds that cut words.

The shapes :class:`~celery_warden.redaction.Redactor` masks in text (exception messages,
tracebacks, log lines, settings messages), kept apart from the redactor's policy (which keys
are secret) because reading them right is its own problem:

* a *key* is matched with its separator only, never with a value: the value is read (by
  :func:`value_end`) only when the key is secret. A pattern that matched every pair whole
  would take ``ConnectionError: password=hunter2`` as the key ``ConnectionError`` with the
  value ``password=hunter2`` and pass it by.
* a *value* is a quoted string (also backslash-escaped, as in JSON inside a string), a
  bracketed list or object, an auth scheme with its credentials, or a bare word; a quote or
  bracket never closed (text that was cut) runs to the end of its line.
* a *URL password* runs from ``scheme://user:`` to the last ``@`` (an unencoded ``@`` in a
  password is common; redis-py splits at the last one).

Masking is idempotent: ``[redacted]`` is read as a bracketed value and masked to itself, and a
URL password already masked is left as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

#: What a masked value is replaced with.
MASK = "[redacted]"
#: What a URL's password is replaced with when a URL is printed on its own (short, so the URL
#: stays readable on one line).
URL_MASK = "***"

#: A key (optionally quoted, also with backslash-escaped quotes) and a ``:`` or ``=``
#: separator, not inside a word (the ``n`` of a repr'd ``\n`` does not count as a word).
KEY = re.compile(
    r"""(?:(?<![\w.\-\\])|(?<=\\[ntr]))"""
    r"""(?P<key>(?:\\?["'])?[A-Za-z_][\w.-]*(?:\\?["'])?)(?P<sep>\s*[:=]\s*)"""
)
# Credentials after an auth scheme (``Authorization: Bearer xyz``): the scheme and one token.
_AUTH = re.compile(r"(?:Bearer|Basic|Token|Digest|Negotiate|ApiKey)\s+[^\s,;&'\"}\])]+",
                   re.IGNORECASE)
# A bare value: up to whitespace or a delimiter of the surrounding text.
_BARE = re.compile(r"""[^\s,;&'"}\])]+""")
# A URL password inside free text: "scheme://user:" up to the last "@" before whitespace, a
# quote or a "/".
_URL_PASSWORD = re.compile(
    r"""(?P<head>[A-Za-z][\w+.-]*://[^:/@\s'"<>]*:)(?P<pw>[^/\s'"<>]*)(?=@)"""
)
# "user:password@" at the start of one URL-ish value (scheme and "//" optional, leading
# whitespace allowed): the password runs to the last "@" of the value.
_USERINFO = re.compile(
    r"""^(?P<head>\s*(?:[A-Za-z][\w+.-]*:)?(?://)?[^:/@\s]*:)(?P<pw>.*)(?=@)""", re.DOTALL
)
_OPENING = "[{("
_CLOSING = "]})"


def _quoted_end(text: str, i: int, quote: str) -> int:
    """End of the quoted value opening at ``text[i]`` (after its closing quote)."""
    j, n = i + 1, len(text)
    while j < n:
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if c == quote:
            return j + 1
        if c == "\n":
            return j
        j += 1
    return n


def _bracket_end(text: str, i: int) -> int:
    """End of the bracketed value opening at ``text[i]`` (nested brackets and quoted strings
    inside are skipped)."""
    depth, j, n = 0, i, len(text)
    while j < n:
        c = text[j]
        if c in "'\"":
            j = _quoted_end(text, j, c)
            continue
        if c in _OPENING:
            depth += 1
        elif c in _CLOSING:
            depth -= 1
            if depth == 0:
                return j + 1
        elif c == "\n":
            return j
        j += 1
    return n


def value_end(text: str, i: int) -> int:
    """Where the value starting at ``text[i]`` ends (``i`` itself when there is none)."""
    if i >= len(text):
        return i
    c = text[i]
    if c in "'\"":
        return _quoted_end(text, i, c)
    if c == "\\" and text[i + 1:i + 2] in ("'", '"'):  # \"value\": JSON inside a string
        quote = text[i:i + 2]
        end, line = text.find(quote, i + 2), text.find("\n", i + 2)
        if end < 0 or 0 <= line < end:
            return len(text) if line < 0 else line
        return end + 2
    if c in "[{":
        return _bracket_end(text, i)
    m = _AUTH.match(text, i) or _BARE.match(text, i)
    return m.end() if m else i


def masked_value(value: str) -> str:
    """The mask for one value, inside the value's own quotes when it had closed ones."""
    quote = value[:2] if value[:1] == "\\" else value[:1]
    if quote in ("'", '"', "\\'", '\\"') and len(value) > len(quote) and value.endswith(quote):
        return f"{quote}{MASK}{quote}"
    return MASK


def mask_url_passwords(text: str, mask: str = MASK) -> str:
    """Every ``scheme://user:password@`` in ``text`` with the password masked."""
    if "://" not in text or "@" not in text:
        return text
    return _URL_PASSWORD.sub(_keep_masked(mask), text)


def mask_url(url: str) -> str:
    """One URL (or a value meant to be one) with its password replaced by ``***``, for
    printing. Never raises, and changes nothing else: settings messages show values that
    failed validation (``http://u:pw@h``, ``Redis://:pw@h``, a leading space), and what is
    wrong with them must stay visible."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        password = None
    if password is not None:
        netloc = parts.netloc  # urlsplit drops tabs and newlines: then it is not found below
        userinfo, _, hostport = netloc.rpartition("@")
        if netloc in url:
            user = userinfo.partition(":")[0]
            return url.replace(netloc, f"{user}:{URL_MASK}@{hostport}", 1)
    return _USERINFO.sub(_keep_masked(URL_MASK), url, count=1)


def _keep_masked(mask: str) -> Callable[[re.Match[str]], str]:
    def sub(m: re.Match[str]) -> str:
        return m.group(0) if m.group("pw") in (MASK, URL_MASK) else m.group("head") + mask

    return sub


def bound_words(text: str, limit: int, keep: str = "head") -> str:
    """At most ``limit`` characters of ``text`` from its head (or tail), without the word the
    bound cuts in two (a piece of a URL or value no longer looks like one)."""
    if len(text) <= limit:
        return text
    if keep == "tail":
        text = text[-limit:]
        ends = [i for i in (text.find(c) for c in " \t\n") if i >= 0]
        return text[min(ends) if ends else len(text):]
    text = text[:limit]
    return text[:max(text.rfind(c) for c in " \t\n") + 1]


__all__ = ["KEY", "MASK", "URL_MASK", "bound_words", "mask_url", "mask_url_passwords",
           "masked_value", "value_end"]
