"""The shipped sample data is what the generator makes, in the real files' schema."""

from __future__ import annotations

import csv
import subprocess
import sys

import openpyxl
import pytest
from conftest import PROJECT_TEMPLATE, REFERENCE_DATA, ROOT

SHIPPED = PROJECT_TEMPLATE / "data" / "01_raw"
FILES = ("companies.csv", "reviews.csv", "shuttles.xlsx")


def header(path) -> list[str]:
    if path.suffix == ".csv":
        with path.open(newline="") as file:
            return next(csv.reader(file))
    sheet = openpyxl.load_workbook(path, read_only=True).active
    return [cell.value for cell in next(sheet.iter_rows(max_row=1))]


def test_generator_reproduces_the_shipped_files_byte_for_byte(tmp_path):
    subprocess.run([sys.executable, ROOT / "scripts/make_sample_data.py", tmp_path], check=True)
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (SHIPPED / name).read_bytes(), name


def test_sample_data_is_big_enough_to_train_on():
    with (SHIPPED / "companies.csv").open(newline="") as file:
        assert sum(1 for _ in file) > 1000
    assert openpyxl.load_workbook(SHIPPED / "shuttles.xlsx", read_only=True).active.max_row > 2000


@pytest.mark.parametrize("name", FILES)
def test_columns_match_the_real_spaceflights_files(name):
    if not (REFERENCE_DATA / name).exists():
        pytest.skip(f"the real {name} is not in {REFERENCE_DATA} (set SPACEFLIGHTS_REFERENCE_DATA)")
    assert header(SHIPPED / name) == header(REFERENCE_DATA / name)


def test_values_keep_the_real_formats():
    with (SHIPPED / "companies.csv").open(newline="") as file:
        companies = list(csv.DictReader(file))
    assert {row["iata_approved"] for row in companies} == {"t", "f", ""}
    assert all(row["company_rating"].endswith("%") for row in companies if row["company_rating"])
    sheet = openpyxl.load_workbook(SHIPPED / "shuttles.xlsx", read_only=True).active
    rows = sheet.iter_rows(min_row=2, values_only=True)
    prices = [row[11] for row in rows]
    assert all(isinstance(price, str) and price.startswith("$") and price.endswith(".0") for price in prices)
    assert any("," in price for price in prices)
