"""The result base: nested round trips, checked loads, written files, old names."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import ClassVar

import pytest
import torch

from interp.errors import StoreError
from interp.results import Result


@dataclass
class Row:
    name: str
    values: tuple[float, float]


@dataclass
class Inner(Result):
    stem: ClassVar[str] = "inner"
    count: int
    weights: torch.Tensor | None = None


@dataclass
class Outer(Result):
    stem: ClassVar[str] = "outer"
    title: ClassVar[str] = "An outer result"
    label: str
    rows: list[Row]
    by_layer: dict[int, Inner]
    pairs: list[tuple[str, float]] = field(default_factory=list)
    loss: float = float("nan")

    def summary(self) -> str:
        return f"{self.label}: {len(self.rows)} rows"

    def to_html(self) -> str:
        return f"<!DOCTYPE html><p>{self.label}</p>"


def _outer() -> Outer:
    return Outer("x", [Row("a", (1.0, 2.0))], {3: Inner(4, torch.arange(3.0))}, [("t", 0.5)], 0.25)


def test_round_trip_rebuilds_nested_values_from_the_annotations(tmp_path):
    original = _outer()
    back = Outer.load(original.save(tmp_path / "o.json"))
    assert back.rows == [Row("a", (1.0, 2.0))] and isinstance(back.rows[0].values, tuple)
    assert list(back.by_layer) == [3] and isinstance(back.by_layer[3], Inner)
    assert torch.equal(back.by_layer[3].weights, torch.arange(3.0))
    assert back.pairs == [("t", 0.5)] and back.loss == 0.25


def test_saved_files_carry_kind_and_version_and_are_checked(tmp_path):
    path = _outer().save(tmp_path / "o.json")
    data = json.loads(path.read_text())
    assert data["kind"] == "Outer" and data["schema_version"] == 1
    with pytest.raises(StoreError, match="holds a Outer, not a Inner"):
        Inner.load(path)
    data["schema_version"] = 2
    path.write_text(json.dumps(data))
    with pytest.raises(StoreError, match="newer interp"):
        Outer.load(path)
    path.write_text("{not json")
    with pytest.raises(StoreError, match="not a JSON file"):
        Outer.load(path)
    with pytest.raises(StoreError, match="not found"):
        Outer.load(tmp_path / "missing.json")


def test_files_without_kind_or_version_load_as_version_1(tmp_path):
    data = _outer().to_dict()
    del data["kind"], data["schema_version"]
    (tmp_path / "old.json").write_text(json.dumps(data))
    assert Outer.load(tmp_path / "old.json").label == "x"


def test_write_puts_json_and_html_in_a_folder_and_load_reads_the_folder(tmp_path):
    paths = _outer().write(tmp_path / "out")
    assert paths == {"json": tmp_path / "out" / "outer.json", "html": tmp_path / "out" / "outer.html"}
    assert Outer.load(tmp_path / "out").label == "x"
    assert Inner(1).write(tmp_path / "inner") == {"json": tmp_path / "inner" / "inner.json"}  # no page, no html


def test_notebook_block_and_the_old_table_name():
    assert "An outer result" in _outer()._repr_html_()
    with pytest.warns(DeprecationWarning, match=r"Outer.table\(\) is deprecated: use Outer.summary\(\)"):
        assert _outer().table() == "x: 1 rows"
