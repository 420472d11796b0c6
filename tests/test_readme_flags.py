"""The README's flag table matches the parser: every flag, its default and its help."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer import flags_table
from trainer.datasets import DATASETS
from trainer.flags import build_parser
from trainer.recipes import recipe_for

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_table() -> str:
    text = README.read_text(encoding="utf-8")
    return text.split(flags_table.START, 1)[1].split(flags_table.END, 1)[0]


def test_readme_table_is_the_generated_one() -> None:
    current = README.read_text(encoding="utf-8")
    assert flags_table.replace_table(current, flags_table.render_table()) == current, (
        "README.md's flag table is out of date: python -m trainer.flags_table --write README.md"
    )


def test_every_flag_is_listed_with_its_default_and_help() -> None:
    rows = {
        line.split(" | ")[0].strip("| `"): line
        for line in readme_table().splitlines()
        if line.startswith("| `--")
    }
    actions = [a for a in build_parser()._actions if a.option_strings and a.dest != "help"]
    assert sorted(rows) == sorted(a.option_strings[0] for a in actions)
    for action in actions:
        row = rows[action.option_strings[0]]
        assert flags_table.default_text(action) in row
        assert flags_table.help_text(action) in row
    assert "| `42` |" in rows["--seed"] and "| `val_accuracy` |" in rows["--hypertune-metric"]


def test_recipe_defaults_are_shown_per_dataset() -> None:
    mnist = recipe_for("mnist", DATASETS["mnist"].default_model, False)["epochs"]
    flowers = recipe_for("flowers", DATASETS["flowers"].default_model, False)["epochs"]
    rows = [line for line in readme_table().splitlines() if line.startswith("| `--epochs`")]
    assert rows and f"| mnist `{mnist}`, flowers `{flowers}` |" in rows[0]


def test_check_fails_on_a_stale_table_and_write_fixes_it(tmp_path: Path) -> None:
    stale = tmp_path / "README.md"
    stale.write_text(f"# x\n\n{flags_table.START}\n| old |\n{flags_table.END}\n\nmore\n")
    assert flags_table.main(["--check", str(stale)]) == 1
    assert flags_table.main(["--write", str(stale)]) == 0
    assert flags_table.main(["--check", str(stale)]) == 0
    text = stale.read_text()
    assert "| old |" not in text and "`--hypertune-metric`" in text and text.endswith("\nmore\n")


def test_a_readme_without_markers_is_an_error() -> None:
    with pytest.raises(ValueError, match="flags:start"):
        flags_table.replace_table("# no table here\n", flags_table.render_table())
