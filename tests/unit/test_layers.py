"""The package's imports point one way (tools/layers.py): no circle, no upward import, and no
module grown past the size where it usually holds more than one concept."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("layers", ROOT / "tools" / "layers.py")
assert spec is not None and spec.loader is not None
layers = importlib.util.module_from_spec(spec)
sys.modules["layers"] = layers
spec.loader.exec_module(layers)


def test_no_import_circle_and_no_upward_import():
    """Every module is in a layer, imports only its layer and those below, in no circle."""
    assert layers.problems() == []


def test_modules_stay_one_concept_each():
    """No module over tools/layers.MAX_LINES lines."""
    assert layers.oversized() == []


def test_the_checker_sees_function_level_and_type_checking_imports(tmp_path, monkeypatch):
    """A circle hidden in a function body or under TYPE_CHECKING is still a circle."""
    pkg = tmp_path / "src" / "celery_warden"
    (pkg / "record").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "record" / "__init__.py").write_text("")
    (pkg / "keys.py").write_text("def f():\n    from celery_warden.record import a\n")
    (pkg / "record" / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from celery_warden import keys\n"
        "from celery_warden.warden import Warden\n")
    (pkg / "warden.py").write_text("")
    monkeypatch.setattr(layers, "PACKAGE", pkg)
    found = layers.problems()
    assert "import circle: keys -> record.a" in found
    assert "upward import: keys (foundation) imports record.a (record)" in found
    assert "upward import: record.a (record) imports warden (warden)" in found
