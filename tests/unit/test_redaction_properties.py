"""Redaction of free text, property-based: generated secrets in every shape the redactor knows
(``k=v``, ``k: v``, quoted values, JSON, Python reprs, URL passwords, ``Authorization:``
headers), alone and combined inside exception-like text and tracebacks.

Two properties: the secret value never appears in the output, and text without a secret key
comes back unchanged (plus: redacting twice changes nothing, so a value masked where it was
created and masked again where it is read stays the same).
"""

from __future__ import annotations

import json
import string

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from celery_warden.redaction import MASK, Redactor

R = Redactor()

SECRET_KEYS = [
    "password", "PASSWORD", "db_password", "Passwd", "token", "access_token", "accessToken",
    "refresh-token", "secret", "client_secret", "SECRET_KEY", "api_key", "apiKey", "X-Api-Key",
    "private_key", "credentials", "cookie", "Set-Cookie",
]
#: Keys that look like secret ones but are not (a whole ``_``-part must match).
PLAIN_KEYS = [
    "user", "max_tokens", "tokenizer", "secretary_name", "passport", "cookies_accepted_at",
    "author", "task_id", "host", "ConnectionError", "ValueError", "reason", "retry-after",
]
EXC_TYPES = ["ConnectionError", "ValueError", "redis.exceptions.AuthenticationError",
             "KeyError", "OperationalError"]
JOINERS = [" ", ", ", "; ", "\n", " and ", " | "]

# A bare value ends at whitespace or , ; & ' " } ] ): those cannot be inside one.
BARE = string.ascii_letters + string.digits + "-._~+/=!$*%^#:@?<>|`"
# What an unencoded URL password can hold (RFC 3986 unreserved + sub-delims + ":" and a stray
# "@", which redis-py and kombu accept as the last "@" before the host).
URL_PW = string.ascii_letters + string.digits + "-._~!$&()*+,;=:%@"
TOKEN = string.ascii_letters + string.digits + "-._~+/="


def _secret(alphabet: str) -> st.SearchStrategy[str]:
    # At least 6 characters, so a secret is not found by chance inside the rest of the text.
    return st.text(alphabet=alphabet, min_size=6, max_size=24)


# -- one fragment = (text, the secret as it appears in the text) --------------------------------
@st.composite
def bare_pair(draw: st.DrawFn) -> tuple[str, str]:
    key, value = draw(st.sampled_from(SECRET_KEYS)), draw(_secret(BARE))
    sep = draw(st.sampled_from(["=", ": ", ":", " = ", "= "]))
    return f"{key}{sep}{value}", value


@st.composite
def quoted_pair(draw: st.DrawFn) -> tuple[str, str]:
    key, quote = draw(st.sampled_from(SECRET_KEYS)), draw(st.sampled_from(["'", '"']))
    value = draw(st.text(st.characters(blacklist_categories=["Cs", "Cc"]), min_size=6,
                         max_size=24))
    escaped = value.replace("\\", "\\\\").replace(quote, "\\" + quote)
    sep = draw(st.sampled_from(["=", ": ", " = "]))
    return f"{key}{sep}{quote}{escaped}{quote}", escaped


@st.composite
def json_object(draw: st.DrawFn) -> tuple[str, str]:
    key = draw(st.sampled_from(SECRET_KEYS))
    value = draw(st.text(min_size=6, max_size=24))
    others = draw(st.dictionaries(st.sampled_from(PLAIN_KEYS), st.integers() | st.text(BARE),
                                  max_size=3))
    doc = {**others, key: value}
    compact, ascii_only = draw(st.booleans()), draw(st.booleans())
    text = json.dumps(doc, ensure_ascii=ascii_only, separators=(",", ":") if compact else None)
    return text, json.dumps(value, ensure_ascii=ascii_only)[1:-1]


@st.composite
def python_repr(draw: st.DrawFn) -> tuple[str, str]:
    key = draw(st.sampled_from(SECRET_KEYS))
    value = draw(st.text(st.characters(blacklist_categories=["Cs"]), min_size=6, max_size=24))
    text = repr({"user": draw(st.text(BARE, max_size=8)), key: value})
    return text, repr(value)[1:-1]


@st.composite
def url(draw: st.DrawFn) -> tuple[str, str]:
    scheme = draw(st.sampled_from(["redis", "rediss", "amqp", "postgresql", "https", "Redis"]))
    user = draw(st.text(string.ascii_lowercase + string.digits + "_-", max_size=8))
    password = draw(_secret(URL_PW))
    host = draw(st.sampled_from(["h", "127.0.0.1", "db.internal:6379", "[::1]:5672"]))
    path = draw(st.sampled_from(["", "/0", "//", "/vhost?x=1"]))
    return f"{scheme}://{user}:{password}@{host}{path}", password


@st.composite
def auth_header(draw: st.DrawFn) -> tuple[str, str]:
    key = draw(st.sampled_from(["Authorization", "authorization", "Proxy-Authorization"]))
    scheme = draw(st.sampled_from(["Bearer", "Basic", "Token", "bearer"]))
    value = draw(_secret(TOKEN))
    sep = draw(st.sampled_from([": ", "=", ":"]))
    return f"{key}{sep}{scheme} {value}", value


FRAGMENTS = st.one_of(bare_pair(), quoted_pair(), json_object(), python_repr(), url(),
                      auth_header())


@st.composite
def filler(draw: st.DrawFn) -> str:
    """Text around the secrets: words, non-secret ``key: value`` pairs, numbers."""
    parts = draw(st.lists(
        st.one_of(
            st.text(string.ascii_letters + string.digits + " .-()", max_size=12),
            st.builds(lambda k, v: f"{k}: {v}", st.sampled_from(PLAIN_KEYS),
                      st.text(BARE, max_size=10)),
            st.builds(lambda k, v: f"{k}={v}", st.sampled_from(PLAIN_KEYS),
                      st.integers().map(str)),
        ),
        max_size=3,
    ))
    return " ".join(parts)


@st.composite
def exception_text(draw: st.DrawFn) -> tuple[str, list[str]]:
    """``Type: msg`` / ``Type('msg')`` / a traceback ending in ``Type: msg``, with 1-3 secrets."""
    fragments = draw(st.lists(FRAGMENTS, min_size=1, max_size=3))
    pieces = [draw(filler())]
    for text, _ in fragments:
        pieces += [text, draw(filler())]
    message = draw(st.sampled_from(JOINERS)).join(p for p in pieces if p)
    exc = draw(st.sampled_from(EXC_TYPES))
    shape = draw(st.sampled_from(["line", "traceback", "bare"]))
    if shape == "line":
        text = f"{exc}: {message}"
    elif shape == "traceback":
        text = ("Traceback (most recent call last):\n"
                '  File "/app/tasks.py", line 12, in charge\n    client.connect()\n'
                f"{exc}: {message}")
    else:
        text = message
    return text, [secret for _, secret in fragments]


@settings(max_examples=300, deadline=None)
@given(exception_text())
def test_no_secret_survives_in_exception_text(case):
    """Whatever the shape and the surroundings, no generated secret appears in the output."""
    text, secrets = case
    for secret in secrets:
        assume(secret not in MASK)
        # the secret must not occur in the text apart from where it was put (a 6-char secret
        # could also be a piece of the surrounding words)
        assume(text.count(secret) == 1)
    out = R.redact_text(text)
    for secret in secrets:
        assert secret not in out, (text, out)


@settings(max_examples=100, deadline=None)
@given(exception_text())
def test_redaction_is_idempotent(case):
    """Masking already masked text changes nothing (failure text is masked where it is
    created and again where it is read)."""
    once = R.redact_text(case[0])
    assert R.redact_text(once) == once


@st.composite
def plain_text(draw: st.DrawFn) -> str:
    """Exception-like text with only non-secret keys, URLs without passwords, quotes, JSON."""
    values = st.text().filter(lambda t: "://" not in t)
    pieces = draw(st.lists(st.one_of(
        filler(),
        st.builds(lambda k, v: json.dumps({k: v}), st.sampled_from(PLAIN_KEYS), values),
        st.builds(lambda k, v: repr({k: v}), st.sampled_from(PLAIN_KEYS), values),
        st.sampled_from(["redis://127.0.0.1:6379/0", "amqp://guest@h//", "https://x.org/a?b=c",
                         "Bearer of bad news", "a == b", "12:30:01", "[i]bold[/i] [/]"]),
    ), min_size=1, max_size=4))
    exc = draw(st.sampled_from(EXC_TYPES))
    return f"{exc}: " + draw(st.sampled_from(JOINERS)).join(pieces)


@settings(max_examples=150, deadline=None)
@given(plain_text())
def test_text_without_secret_keys_is_unchanged(text):
    """No secret key, no URL password: the text comes back exactly as it went in (the keys
    used, ``max_tokens``, ``tokenizer``, ``passport``, ..., make the redactor scan it)."""
    assert R.redact_text(text) == text


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_arbitrary_text_without_keys_or_urls_is_unchanged(text):
    """Any text that names no secret key and holds no ``scheme://user:pw@`` is left alone."""
    assume("://" not in text)
    assume(all(k not in text.lower() for k in ("pass", "secret", "token", "auth", "api",
                                                "cookie", "private", "credential")))
    assert R.redact_text(text) == text


@given(st.lists(st.sampled_from(["password", "api", "tok", "token", "x", " ", "\n", "é", "secre",
                                 "t", "cookie", "passwd", "priv", "ate", "0123456789abcdef"]),
                max_size=400),
       st.sampled_from(["", "pass+word,a.b", "job_id,x-y"]))
def test_the_long_text_gate_means_the_anchor_regex(pieces, extra):
    """Substring searches (long text) and the anchor regex (short text) agree on every text,
    with the default keys and with extra ones that need escaping."""
    redactor = Redactor(extra)
    low = "".join(pieces).lower()
    assert redactor._anchored(low) == (redactor._anchor.search(low) is not None)
    assert redactor._anchored(low * 3) == (redactor._anchor.search(low * 3) is not None)
