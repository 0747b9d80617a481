"""Write, as JSON, the rows of the training and test sets in each DAG run folder given.

Runs with the baked project's Python: `python split_sizes.py <out.json> <run folder>...`.
"""

import json
import sys
from pathlib import Path

import pandas as pd

out, *folders = sys.argv[1:]
sizes = {
    folder: {name: len(pd.read_pickle(Path(folder, f"05_model_input/{name}.pickle"))) for name in ("X_train", "X_test")}
    for folder in folders
}
Path(out).write_text(json.dumps(sizes))
