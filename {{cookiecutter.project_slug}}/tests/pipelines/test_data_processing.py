"""The data processing pipeline on a few rows in raw format, in memory."""

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from {{ cookiecutter.python_package }}.pipelines.data_processing import create_pipeline


@pytest.fixture
def raw_data() -> dict[str, pd.DataFrame]:
    companies = pd.DataFrame(
        {
            "id": [1, 2],
            "company_rating": ["100%", "67%"],
            "company_location": ["Niue", None],
            "total_fleet_count": [1.0, 3.0],
            "iata_approved": ["t", "f"],
        }
    )
    shuttles = pd.DataFrame(
        {
            "id": [10, 11, 12],
            "d_check_complete": ["f", "t", "f"],
            "moon_clearance_complete": ["t", "f", "f"],
            "price": ["$1,715.0", "$820.0", "$4,100.5"],
            "company_id": [1, 2, 2],
        }
    )
    reviews = pd.DataFrame(
        {"shuttle_id": [10, 11], "review_scores_rating": [91.0, None]}
    )
    return {"companies": companies, "shuttles": shuttles, "reviews": reviews}


def test_pipeline_builds_model_input_table(raw_data):
    catalog = DataCatalog({name: MemoryDataset(df) for name, df in raw_data.items()})

    outputs = SequentialRunner().run(create_pipeline(), catalog)
    table = outputs["model_input_table"].load()

    # Shuttle 12 has no review and shuttle 11's company has no location: dropped.
    assert table.to_dict("records") == [
        {
            "d_check_complete": False,
            "moon_clearance_complete": True,
            "price": 1715.0,
            "company_id": 1,
            "shuttle_id": 10,
            "review_scores_rating": 91.0,
            "id": 1,
            "company_rating": 1.0,
            "company_location": "Niue",
            "total_fleet_count": 1.0,
            "iata_approved": True,
        }
    ]
