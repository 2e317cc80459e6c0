"""Mask secrets (passwords, tokens, API keys, ...) before they reach a log line or the store.

One :class:`Redactor` serves every output Warden writes: log lines (a structlog processor in
:mod:`celery_warden.logs.context`), the ``args``/``kwargs`` previews kept in task records and
returned by ``CeleryMonitor.get_task_status``, and every failure text — exception messages,
tracebacks, retry history, error groups, DLQ entries — through :meth:`Redactor.failure_text`
where it is created (masked first, cut after) and :meth:`Redactor.redact_text` again where it is
read. The broker message itself is never touched, so a task requeued from the dead letter queue
still runs with its real arguments.

A key is secret when one of the configured names (``DEFAULT_KEYS`` plus ``WARDEN_REDACT_KEYS``)
is the whole key or a whole ``_``-separated part of it, case-insensitively, after ``-``, ``.``
and camelCase are folded to ``_``: ``password``, ``DB_PASSWORD``, ``access-token``, ``apiKey``
and ``X-Api-Key`` match; ``max_tokens`` and ``tokenizer`` do not. Values are masked wherever
such a key appears in nested dicts and lists, and in text (reprs, messages, exception text)
where it appears as ``key=value`` / ``key: value`` / ``'key': 'value'`` / JSON /
``Authorization: Bearer …`` (how a value is found in text: :mod:`celery_warden.secret_text`). A
URL's password (``redis://user:secret@host``) is masked too. Positional arguments carry no key,
so a secret passed positionally can only be masked when it sits inside a dict.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from celery_warden.secret_text import (
    KEY,
    MASK,
    URL_MASK,
    bound_words,
    mask_url,
    mask_url_passwords,
    masked_value,
    value_end,
)

#: Key names masked by default (``WARDEN_REDACT_KEYS`` adds to these).
DEFAULT_KEYS = ("password", "passwd", "secret", "token", "authorization", "api_key", "apikey",
                "cookie", "private_key", "credentials")
#: Longest ``args`` / ``kwargs`` preview kept in a task record (characters of JSON).
MAX_PREVIEW = 256
#: Inside a preview: longest string, most items per container, deepest nesting kept; a
#: preview still over the limit is shrunk again with the tighter second set.
PREVIEW_LIMITS = ((120, 20, 4), (32, 6, 3))
#: Nesting beyond this is not walked (guards against self-referencing structures).
MAX_DEPTH = 32
#: Longest failure text scanned for secrets; what is kept is far shorter (hundreds to 16,000
#: characters), so this only bounds the work for a pathological exception message.
MAX_SCAN = 256 * 1024

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_WORD = re.compile(r"[^a-z0-9]+")


@lru_cache(maxsize=4096)
def normalise_key(key: str) -> str:
    """``X-Api-Key`` / ``apiKey`` / ``API_KEY`` → ``x_api_key`` / ``api_key`` / ``api_key``."""
    return _NON_WORD.sub("_", _CAMEL.sub("_", key.strip()).lower()).strip("_")


def parse_keys(text: str | Iterable[str]) -> tuple[str, ...]:
    """A comma-separated list (``WARDEN_REDACT_KEYS``) or iterable as normalised key names."""
    items = text.split(",") if isinstance(text, str) else text
    return tuple(k for k in (normalise_key(i) for i in items) if k)


class Redactor:
    """Masks values under secret-looking keys in structures and text. Thread-safe."""

    def __init__(self, extra_keys: str | Iterable[str] = ()) -> None:
        self.keys = frozenset(parse_keys(DEFAULT_KEYS) + parse_keys(extra_keys))
        self._secret: dict[str, bool] = {}
        self._plain_keys: set[str] = set()  # keys known not secret (_learn)
        # Cheap pre-check: only text mentioning a key (or a URL) goes through the key=value scan.
        hints = sorted({re.escape(k).replace("_", "[_.-]?") for k in self.keys}, key=len,
                       reverse=True)
        self._hint = re.compile("|".join(hints), re.IGNORECASE)
        # A cheaper gate in front of that one (~0.3 µs instead of ~6 µs per short string, and
        # every field of every API answer is checked): a key can only be secret when the
        # lower-cased text holds its first ``_``-separated word — normalise_key lower-cases per
        # character, so a key matched by is_secret always leaves that word in text.lower().
        self._anchor_words = words = tuple(sorted({k.split("_")[0] for k in self.keys}, key=len,
                                                  reverse=True))
        self._anchor = re.compile("|".join(re.escape(w) for w in words))

    # -- keys ------------------------------------------------------------------------------
    def is_secret(self, key: str) -> bool:
        """Whether values under ``key`` are masked (cached per distinct key)."""
        known = self._secret.get(key)
        if known is None:
            k = normalise_key(key)
            known = any(
                k == d or k.startswith(d + "_") or k.endswith("_" + d) or f"_{d}_" in k
                for d in self.keys
            )
            if len(self._secret) < 10_000:
                self._secret[key] = known
        return known

    # -- values ----------------------------------------------------------------------------
    def redact(self, value: Any, _depth: int = 0) -> Any:
        """A copy of ``value`` with secret keys masked at any depth (text scanned too).

        Dicts stay dicts, lists and tuples become lists; anything else is returned as is.
        """
        if isinstance(value, str):
            return self.redact_text(value)
        if value is None or isinstance(value, int | float) or _depth >= MAX_DEPTH:
            return value  # the common scalars first: the Mapping check below is an ABC's
        if isinstance(value, dict | Mapping):
            return {
                k: MASK if isinstance(k, str) and self.is_secret(k)
                else self.redact(v, _depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.redact(v, _depth + 1) for v in value]
        return value

    def may_change(self, text: str) -> bool:
        """Whether :meth:`redact_text` could change ``text`` or a piece of it. ``False``
        answers for every ``\\n``-separated piece too: each gate of :meth:`redact_text` (a URL
        with ``://`` and ``@``; an anchor word in the lower-cased text) looks for a substring
        without a newline, so a piece passes a gate only if the whole does — one check of many
        short strings joined by newlines instead of one per string."""
        return ("://" in text and "@" in text) or self._anchored(text.lower())

    def _anchored(self, low: str) -> bool:
        """Whether ``low`` (lower-cased) holds an anchor word: from 256 characters (a page's strings
        joined) a substring search per word, ~2x cheaper than the regex of the same words."""
        if len(low) < 256:
            return self._anchor.search(low) is not None
        return any(word in low for word in self._anchor_words)

    def redact_records(self, records: list[dict[str, Any]]) -> list[Any]:
        """``redact(records)``, cheaper for many small records that rarely hold a secret (an
        API page): a record without a secret key whose strings, joined, pass no gate of
        :meth:`redact_text` (:meth:`may_change`) is returned as it is — the same value, not a
        copy — and any other goes through :meth:`redact`. The whole list is checked at once
        first (one join and one gate for a page that holds no secret, the common case)."""
        texts: list[str] = []
        if all(self._plain(r, texts, 0) for r in records) and not self.may_change(
                "\n".join(texts)):
            return list(records)
        out: list[Any] = []
        for record in records:
            texts = []
            if self._plain(record, texts, 0) and not self.may_change("\n".join(texts)):
                out.append(record)
            else:
                out.append(self.redact(record))
        return out

    def _plain(self, value: Any, texts: list[str], depth: int) -> bool:
        """Collect the strings of ``value`` into ``texts``; ``False`` when it holds a secret
        key, or something :meth:`redact` would not return equal (a tuple, an object, a
        non-string key, nesting past a few levels): that record is then redacted in full."""
        kind = type(value)
        if kind is str:
            texts.append(value)
            return True
        if value is None or kind is int or kind is float or kind is bool:
            return True
        if depth > 3:
            return False
        if kind is list:
            return all(self._plain(v, texts, depth + 1) for v in value)
        if kind is not dict or not (value.keys() <= self._plain_keys or self._learn(value)):
            return False
        for v in value.values():  # the common scalars inline: ~17 fields per API record
            kind = type(v)
            if kind is str:
                texts.append(v)
            elif not (v is None or kind is int or kind is float or kind is bool
                      or self._plain(v, texts, depth + 1)):
                return False
        return True

    def _learn(self, keys: Iterable[Any]) -> bool:
        """Whether none of ``keys`` is secret (all strings); if so they are remembered, so
        the next record with the same keys is checked by one set comparison."""
        if not all(type(k) is str and not self.is_secret(k) for k in keys):
            return False
        if len(self._plain_keys) < 10_000:
            self._plain_keys.update(keys)
        return True

    def redact_text(self, text: str) -> str:
        """``text`` with ``key=value``-style secrets and URL passwords masked (idempotent: text
        masked once comes back unchanged)."""
        text = mask_url_passwords(text)
        if not self._anchored(text.lower()) or not self._hint.search(text):
            return text
        out: list[str] = []
        pos = 0
        while (m := KEY.search(text, pos)) is not None:
            start = m.end()
            out.append(text[pos:start])
            pos = start
            if self.is_secret(m.group("key").strip("'\"\\")):
                pos = value_end(text, start)
                if pos > start:
                    out.append(masked_value(text[start:pos]))
        out.append(text[pos:])
        return "".join(out)

    def assignment(self, name: str, value: Any) -> str:
        """``NAME=<repr of value>`` for a message about a setting: the value masked whole under
        a secret-looking name, else with URL passwords as ``***`` (the rest stays visible:
        ``http://u:***@h``, a leading space — what is wrong with it) and secrets in it masked."""
        if self.is_secret(name):
            return f"{name}={MASK!r}"
        if isinstance(value, str):
            return f"{name}={self.redact_text(repr(mask_url(value)))}"
        return f"{name}={self.redact_text(mask_url_passwords(repr(value), URL_MASK))}"

    def failure_text(self, text: str | None, limit: int, keep: str = "head") -> str | None:
        """Failure text (an exception message, a traceback) as it may be kept and shown:
        masked first, then cut to ``limit`` characters, keeping the ``head`` or the ``tail``.

        Never cut first: a cut can separate a secret from the key or URL that marks it
        (``redis://u:hunt`` without its ``@``). Input over :data:`MAX_SCAN` characters is
        bounded before it is scanned, dropping the partial word at that cut.
        """
        if text is None:
            return None
        text = self.redact_text(bound_words(text, MAX_SCAN, keep))
        if len(text) > limit:
            text = text[-limit:] if keep == "tail" else text[:limit]
        return text

    # -- previews --------------------------------------------------------------------------
    def preview(self, value: Any, limit: int = MAX_PREVIEW) -> str:
        """Redacted, size-bounded JSON of ``value`` for a task record (at most ``limit`` chars).

        Long strings and containers are cut inside the structure (twice, tighter the second
        time, if needed), so the result is valid JSON in the common case; only a preview still
        over ``limit`` is cut as text and ends with ``…`` (the monitor returns it as a string).
        """
        text = ""
        for limits in PREVIEW_LIMITS:
            text = _ENCODER.encode(self._shrink(value, 0, limits))
            if len(text) <= limit:
                return text
        return text[: limit - 1] + "…"

    def _shrink(self, value: Any, depth: int, limits: tuple[int, int, int]) -> Any:
        kind = type(value)
        if kind is int or kind is float or kind is bool or value is None:  # the common case
            return value
        chars, items, max_depth = limits
        if kind is str:
            value = self.redact_text(value)
            return value if len(value) <= chars else value[:chars] + "…"
        if kind is dict or isinstance(value, Mapping):
            if depth >= max_depth:
                return "{…}"
            out: dict[str, Any] = {}
            for i, (k, v) in enumerate(value.items()):
                if i >= items:
                    out["…"] = f"{len(value) - i} more"
                    break
                key = str(k)
                out[key] = MASK if self.is_secret(key) else self._shrink(v, depth + 1, limits)
            return out
        if kind is list or kind is tuple or isinstance(value, list | tuple):
            if depth >= max_depth:
                return "[…]"
            kept = [self._shrink(v, depth + 1, limits) for v in value[:items]]
            if len(value) > items:
                kept.append(f"… {len(value) - items} more")
            return kept
        if isinstance(value, str | bool | int | float):  # subclasses (enums, ...)
            return value if not isinstance(value, str) else self._shrink(str(value), depth, limits)
        return self._shrink(_fallback(value), depth, limits)


def _fallback(value: Any) -> str:
    return f"<{len(value)} bytes>" if isinstance(value, bytes | bytearray) else str(value)


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_fallback)


def decode_preview(raw: str | None) -> Any:
    """A stored preview back as JSON data, or as the (cut) text when it is not valid JSON."""
    if raw is None or raw == "":
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


__all__ = ["DEFAULT_KEYS", "MASK", "MAX_PREVIEW", "URL_MASK", "Redactor", "decode_preview",
           "mask_url", "normalise_key", "parse_keys"]
