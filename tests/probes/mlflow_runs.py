"""Call the MLflow run helpers as Airflow does: from the module that `nox -s generate`
copies beside the DAGs, imported by name with the DAGs folder on the path.

Runs with the Python of the baked project's Airflow environment (deploy/airflow), which
has no mlflow package: `python mlflow_runs.py <report.json> <module.py> <calls.json>`,
where calls.json lists ``[function, {argument: value}]`` pairs. The report lists what
each call returned, and whether anything imported mlflow.
"""

import importlib
import json
import sys
from pathlib import Path

report, module_file, calls = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
sys.path.insert(0, str(module_file.parent))
module = importlib.import_module(module_file.stem)
returned = [getattr(module, function)(**arguments) for function, arguments in json.loads(calls.read_text())]
with open(report, "w") as out:
    json.dump({"returned": returned, "mlflow_imported": "mlflow" in sys.modules}, out)
