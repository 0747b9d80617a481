"""The data science pipeline on a synthetic model input table, in memory."""

import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from {{ cookiecutter.python_package }}.pipelines.data_science import create_pipeline
from {{ cookiecutter.python_package }}.pipelines.data_science.nodes import split_data

PARAMETERS = {
    "test_size": 0.2,
    "random_state": 3,
    "features": ["engines", "passenger_capacity", "crew"],
}


@pytest.fixture
def model_input_table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "engines": rng.integers(1, 5, 200),
            "passenger_capacity": rng.integers(2, 20, 200),
            "crew": rng.integers(1, 8, 200),
        }
    )
    table["price"] = 1000 * table["engines"] + 50 * table["passenger_capacity"]
    return table


def test_split_data_keeps_every_row_once(model_input_table):
    x_train, x_test, y_train, y_test = split_data(model_input_table, PARAMETERS)

    assert len(x_train) == 160
    assert len(x_test) == 40
    assert list(x_train.columns) == PARAMETERS["features"]
    assert sorted([*y_train.index, *y_test.index]) == list(model_input_table.index)


def test_pipeline_learns_a_linear_price(model_input_table):
    catalog = DataCatalog(
        {
            "model_input_table": MemoryDataset(model_input_table),
            "params:model_options": MemoryDataset(PARAMETERS),
        }
    )

    metrics = SequentialRunner().run(create_pipeline(), catalog)["metrics"].load()

    assert set(metrics) == {"r2_score", "mae", "max_error"}
    assert metrics["r2_score"] == pytest.approx(1.0)
    assert metrics["max_error"] == pytest.approx(0.0, abs=1e-6)
