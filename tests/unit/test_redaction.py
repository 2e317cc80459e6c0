"""Redaction: which keys are secret, masking in structures and text, bounded previews."""

from __future__ import annotations

import json

import pytest

from celery_warden.redaction import MASK, MAX_PREVIEW, Redactor, decode_preview, normalise_key


@pytest.mark.parametrize("key", [
    "password", "PASSWORD", "db_password", "Passwd", "token", "access_token", "accessToken",
    "refresh-token", "secret", "client_secret", "SECRET_KEY", "Authorization", "api_key",
    "apiKey", "X-Api-Key", "apikey", "cookie", "Set-Cookie", "private_key", "credentials",
])
def test_default_secret_keys(key):
    """Default names match whole keys and whole ``_``-parts, whatever the case or separator."""
    assert Redactor().is_secret(key)


@pytest.mark.parametrize("key", [
    "user", "max_tokens", "tokenizer", "secretary_name", "passport", "cookies_accepted_at",
    "author", "task_id",
])
def test_lookalike_keys_are_not_secret(key):
    """Keys that merely contain a default name as a substring are left alone."""
    assert not Redactor().is_secret(key)


def test_configured_keys_add_to_the_defaults():
    """WARDEN_REDACT_KEYS-style lists add names (normalised), keeping the defaults."""
    r = Redactor("Pin_Code, ssn ,")
    assert r.is_secret("pin-code") and r.is_secret("user_ssn") and r.is_secret("password")
    assert normalise_key("X-Api-Key") == "x_api_key"


def test_nested_structures_are_masked_and_the_original_is_untouched():
    """Dicts inside lists inside dicts are masked at any depth; the input is not modified."""
    value = {"user": {"name": "bob", "Password": "p"},
             "items": [{"token": "t", "sku": 1}, ("plain", {"apiKey": "k"})],
             "api_key": {"nested": "whole value masked"}}
    masked = Redactor().redact(value)
    assert masked == {"user": {"name": "bob", "Password": MASK},
                      "items": [{"token": MASK, "sku": 1}, ["plain", {"apiKey": MASK}]],
                      "api_key": MASK}
    assert value["user"]["Password"] == "p" and value["items"][0]["token"] == "t"


@pytest.mark.parametrize(("text", "expected"), [
    ("{'user': 'bob', 'password': 'hunter2'}", "{'user': 'bob', 'password': '[redacted]'}"),
    ('{"token": "abc", "n": 1}', '{"token": "[redacted]", "n": 1}'),
    ("login password=hunter2 ok", "login password=[redacted] ok"),
    ("GET /x?api_key=abc&page=2", "GET /x?api_key=[redacted]&page=2"),
    ("Authorization: Bearer abc.def", "Authorization: [redacted]"),
    ("ValueError('bad secret=s3 given')", "ValueError('bad secret=[redacted] given')"),
    ("redis://user:pw@host:6379/0", "redis://user:[redacted]@host:6379/0"),
    ("max_tokens=5 tokenizer=bpe", "max_tokens=5 tokenizer=bpe"),
    ("nothing to see", "nothing to see"),
    # The last line of a traceback: a non-secret "key: value" must not swallow the pair after it.
    ("ConnectionError: password=hunter2 token=abc",
     "ConnectionError: password=[redacted] token=[redacted]"),
    ("err: Authorization: Bearer xyz", "err: Authorization: [redacted]"),
    ("KeyError: 'user': \"password\": \"x y\"", "KeyError: 'user': \"password\": \"[redacted]\""),
    ('{"msg": "{\\"token\\": \\"abc\\"}"}', '{"msg": "{\\"token\\": \\"[redacted]\\"}"}'),
    ("password=[redacted] again", "password=[redacted] again"),
    ("redis://u:p@ss@host/0", "redis://u:[redacted]@host/0"),
])
def test_text_masking(text, expected):
    """Reprs, key=value pairs, headers and URL passwords are masked inside free text."""
    assert Redactor().redact_text(text) == expected


def test_preview_is_redacted_bounded_json():
    """A preview is valid JSON of the redacted value, cut inside the structure to fit."""
    r = Redactor()
    value = {"password": "p", "blob": "x" * 10_000, "many": list(range(100)),
             "deep": {"a": {"b": {"c": {"d": {"e": 1}}}}}}
    text = r.preview(value)
    assert len(text) <= MAX_PREVIEW
    data = json.loads(text)
    assert data["password"] == MASK
    assert data["blob"].endswith("…") and len(data["blob"]) < 200
    assert data["many"][-1].startswith("… ") and len(data["many"]) < 100
    assert data["deep"]["a"]["b"] == "{…}"
    small = json.loads(r.preview({"note": "n" * 100, "ids": list(range(10))}))
    assert small == {"note": "n" * 100, "ids": list(range(10))}, "small values are kept whole"


def test_preview_over_the_limit_is_cut_text_and_decodes_as_a_string():
    """Still too long after shrinking: cut as text, ending in …; decode_preview returns text."""
    text = Redactor().preview({f"{i}-{'k' * 100}": i for i in range(5)})
    assert len(text) == MAX_PREVIEW and text.endswith("…")
    assert decode_preview(text) == text
    assert decode_preview('{"a": 1}') == {"a": 1}
    assert decode_preview(None) is None and decode_preview("") is None


def test_preview_of_values_json_cannot_encode():
    """Bytes, dates and other objects are previewed as short text instead of failing."""
    import datetime

    data = json.loads(Redactor().preview([b"\x00" * 10, datetime.date(2024, 1, 2), {1, 2}]))
    assert data[0] == "<10 bytes>" and data[1] == "2024-01-02" and data[2].startswith("{")


@pytest.mark.parametrize(("text", "keep", "secret"), [
    # each cut lands inside the secret: cut first, the rest no longer looks like a secret
    ("x" * 480 + ' password="hunter2 is long"', "head", "hunter2"),  # unterminated quote
    ("x" * 485 + " redis://u:hunter2@h/0", "head", "hunt"),  # the "@" is cut off
    ('token="hunter2 and more" ' + "x" * 485, "tail", "and more"),  # the key is cut off
    ("redis://u:hunter2@h/0 " + "x" * 484, "tail", "hunter2"),  # the scheme is cut off
])
def test_failure_text_is_redacted_before_it_is_cut(text, keep, secret):
    """A cut can separate a secret from the key or URL that marks it (``redis://u:hunt`` has
    no ``@`` any more): failure text is masked whole first and bounded afterwards."""
    out = Redactor().failure_text(text, 500, keep=keep)
    assert len(out) <= 500
    assert secret not in out


def test_failure_text_keeps_the_end_of_a_traceback_and_bounds_huge_input():
    """``keep="tail"`` keeps the last characters (where a traceback names the error); input far
    over the limit is bounded before it is scanned, and a secret cut there does not leak."""
    tb = "Traceback\n" + "  frame\n" * 5000 + "ConnectionError: password=hunter2 token=abc"
    out = Redactor().failure_text(tb, 1000, keep="tail")
    assert out.endswith("ConnectionError: password=[redacted] token=[redacted]")
    assert len(out) <= 1000
    huge = "redis://u:hunter2@h " * 100_000
    assert "hunter2" not in Redactor().failure_text(huge, 500)
    assert Redactor().failure_text(None, 10) is None
