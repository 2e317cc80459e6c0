"""``bench/variants.py``: every ablation still applies to this checkout, and changes what it says.

Why a test: a variant patches text of the package; a refactor that moves that text would
otherwise turn ``overhead.py --variant`` into an error at the moment someone wants the figure.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bench import variants


@pytest.mark.parametrize("name", sorted(variants.PATCHES))
def test_each_variant_applies_once_and_changes_only_its_files(name: str, tmp_path: Path) -> None:
    dest = variants.make(name, tmp_path)
    root = variants.ROOT / "src"
    changed = {str(p.relative_to(dest)) for p in dest.rglob("*.py")
               if p.read_bytes() != (root / p.relative_to(dest)).read_bytes()}
    assert changed == {f"celery_warden/{rel}" for rel, _, _ in variants.PATCHES[name]}


def test_unknown_or_stale_variant_is_a_clear_error(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(variants.VariantError, match="unknown variant"):
        variants.make("nope", tmp_path)
    monkeypatch.setitem(variants.PATCHES, "stale", [("record/running.py", "no such text", "")])
    with pytest.raises(variants.VariantError, match="no longer holds exactly one"):
        variants.make("stale", tmp_path)


def test_variants_combine(tmp_path: Path) -> None:
    dest = variants.make("norecord,noreceipt,noheaders", tmp_path)
    for name in ("norecord", "noreceipt", "noheaders"):
        (rel, _, replace), = variants.PATCHES[name]
        assert replace in (dest / "celery_warden" / rel).read_text()
