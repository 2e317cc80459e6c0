"""The README stays true: every setting is documented and the two commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from celery_warden.settings import WardenSettings, env_var_for

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_in_the_readme_configuration_table():
    """Each environment variable the settings read appears as a row of the README's table."""
    readme = (ROOT / "README.md").read_text()
    rows = set(re.findall(r"^\| `([A-Z_]+)` \|", readme, flags=re.MULTILINE))
    expected = {env_var_for(name) for name in WardenSettings.model_fields}
    assert expected - rows == set(), "settings missing from README"
    assert rows - expected == set(), "README documents variables that do not exist"


def test_readme_commands_are_makefile_targets_and_ci_calls_make_test():
    """`make run` / `make test` exist, and .ci/run calls the README's test command."""
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run:", makefile, flags=re.MULTILINE)
    assert re.search(r"^test:", makefile, flags=re.MULTILINE)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
