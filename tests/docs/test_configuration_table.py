"""docs/configuration.md's settings table is Settings.describe(), row for row."""

from __future__ import annotations

from pathlib import Path

from rotator.settings import Settings

CONFIGURATION = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_configuration_table_matches_the_code():
    rows = [
        line for line in CONFIGURATION.read_text().splitlines() if line.startswith("| `ROTATOR_")
    ]
    expected = [
        f"| `{name}` | `{default}` | {doc.replace('|', chr(92) + '|')} |"
        for name, default, doc in Settings.describe()
    ]
    assert rows == expected, (
        "regenerate the table of docs/configuration.md from Settings.describe():\n"
        + "\n".join(expected)
    )
