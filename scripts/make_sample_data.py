"""Generate deterministic synthetic raw data for the Spaceflights starter.

Writes companies.csv, reviews.csv and shuttles.xlsx with the same schema, column
order and value formats as the Kedro Spaceflights raw data, filled with synthetic
values: ids join (shuttles.company_id -> companies.id, reviews.shuttle_id ->
shuttles.id), a few percent of values are missing, and price depends on the
model features plus noise. The output is byte-identical on every run.

Usage (needs openpyxl):
    python scripts/make_sample_data.py [OUTPUT_DIR]

OUTPUT_DIR defaults to {{cookiecutter.project_slug}}/data/01_raw in this repo.
"""

import csv
import io
import random
import re
import sys
import zipfile
from datetime import datetime
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, Side

SEED = 2024
N_COMPANIES, N_SHUTTLES, N_REVIEWS = 1500, 3000, 2500
TIMESTAMP = datetime(2024, 1, 1)  # xlsx created/modified and zip entry times
ROOT = Path(__file__).parents[1]
DEFAULT_OUT = ROOT / "{{cookiecutter.project_slug}}" / "data" / "01_raw"

# fmt: off
LOCATIONS = [
    "Barbados", "Malta", "Rwanda", "Micronesia", "Niue", "Nicaragua", "Uzbekistan",
    "Anguilla", "Gambia", "Estonia", "Indonesia", "Kiribati", "Brazil", "Switzerland",
    "Pakistan", "Guinea", "Mexico", "Chad", "Kenya", "Tonga", "Jersey", "Monaco",
    "France", "Denmark", "Chile", "Croatia", "Uganda", "Maldives", "Lebanon",
    "United Kingdom", "Russian Federation", "Costa Rica", "Isle of Man", "El Salvador",
]
SHUTTLE_TYPES = {"Type V5": 60, "Type F5": 20, "Type V2": 5, "Type G0": 4, "Type O3": 3,
                 "Type V7": 2, "Type Z6": 2, "Type N0": 1, "Type E3": 1, "Type X3": 1}
ENGINE_TYPES = {"Plasma": 56, "Quantum": 43, "Nuclear": 1}
ENGINE_VENDORS = {"ThetaBase Services": 95, "Orion Drive Works": 2, "Kepler and Vance": 1.5,
                  "Nova Dynamics Group": 1, "Vega Thrust Limited": 0.5}
POLICIES = {"strict": 43, "flexible": 33, "moderate": 24}
CAPACITY = {1: 12, 2: 42, 3: 7, 4: 20, 5: 5, 6: 8, 7: 2, 8: 2.5, 10: 1, 12: 0.3, 16: 0.2}
# price = 100 + weights . (engines, passenger_capacity, crew, d_check_complete,
#   moon_clearance_complete, iata_approved, company_rating, review_scores_rating - 80)
PRICE_WEIGHTS = (400, 250, -100, 250, 600, 300, 800, 20)
REVIEW_SCORES = [f"review_scores_{name}" for name in
                 ("rating", "comfort", "amenities", "trip", "crew", "location", "price")]
# fmt: on


def pick(rng: random.Random, weights: dict):
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def maybe(rng: random.Random, value, p_missing: float):
    """Return ``value``, or None (a missing value) with probability ``p_missing``."""
    return None if rng.random() < p_missing else value


def tf(flag: bool) -> str:
    return "t" if flag else "f"


def make_tables(rng: random.Random) -> tuple[list[dict], list[dict], list[dict]]:
    companies, latent = [], {}  # latent: company id -> (rating, iata) before blanking
    for cid in rng.sample(range(1, 50_000), N_COMPANIES):
        rating = 100 if rng.random() < 0.7 else round(100 * rng.betavariate(4, 1.5))
        iata = rng.random() < 0.4
        fleet = float(1 + int(rng.expovariate(1.5)))
        latent[cid] = (rating / 100, iata)
        company = {
            "id": cid,
            "company_rating": maybe(rng, f"{rating}%", 0.04),
            "company_location": maybe(rng, rng.choice(LOCATIONS), 0.05),
            "total_fleet_count": maybe(rng, fleet, 0.005),
            "iata_approved": maybe(rng, tf(iata), 0.005),
        }
        companies.append(company)

    shuttles, reviews = [], []
    company_ids = list(latent)
    reviewed = set(rng.sample(range(N_SHUTTLES), N_REVIEWS))
    for i, sid in enumerate(rng.sample(range(1, 77_000), N_SHUTTLES)):
        cid = rng.choice(company_ids)
        rating, iata = latent[cid]
        cap = pick(rng, CAPACITY)
        crew = max(0, int(cap / 2 + 0.5 + rng.gauss(0, 0.6)))
        engines = max(0, int(cap / 2.5 + 0.6 + rng.gauss(0, 0.5)))
        d_check, moon = rng.random() < 0.4, rng.random() < 0.1
        score = 100 if rng.random() < 0.2 else round(100 - rng.expovariate(1 / 9))
        score = max(20, score)
        features = (engines, cap, crew, d_check, moon, iata, rating, score - 80)
        signal = 100 + sum(w * x for w, x in zip(PRICE_WEIGHTS, features, strict=True))
        price = max(500, round(signal * rng.lognormvariate(0, 0.2) + rng.gauss(0, 300)))
        shuttle = {
            "id": sid,
            "shuttle_location": rng.choice(LOCATIONS),
            "shuttle_type": pick(rng, SHUTTLE_TYPES),
            "engine_type": pick(rng, ENGINE_TYPES),
            "engine_vendor": pick(rng, ENGINE_VENDORS),
            "engines": maybe(rng, engines, 0.01),
            "passenger_capacity": cap,
            "cancellation_policy": pick(rng, POLICIES),
            "crew": maybe(rng, crew, 0.015),
            "d_check_complete": tf(d_check),
            "moon_clearance_complete": tf(moon),
            "price": f"${price:,.1f}",
            "company_id": cid,
        }
        shuttles.append(shuttle)
        if i in reviewed:
            reviews.append({"shuttle_id": sid, **make_review(rng, score)})
    return companies, shuttles, reviews


def make_review(rng: random.Random, score: int) -> dict:
    n = 0 if rng.random() < 0.04 else 1 + int(rng.expovariate(1 / 18))
    subs = [min(10, max(2, round(score / 10 + rng.gauss(0, 0.5)))) for _ in range(6)]
    scores = [maybe(rng, float(v), 0.01) if n else None for v in [score, *subs]]
    per_month = maybe(rng, max(0.01, round(n / rng.uniform(3, 60), 2)), 0.01)
    review = dict(zip(REVIEW_SCORES, scores, strict=True))
    return review | {
        "number_of_reviews": n,
        "reviews_per_month": per_month if n else None,
    }


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)  # None is written as an empty field


def write_xlsx(path: Path, rows: list[dict]) -> None:
    wb = Workbook()
    ws = wb.active
    ws.title = "Sheet1"
    thin = Side(style="thin")
    for col, name in enumerate(rows[0], 1):  # header styled like DataFrame.to_excel
        cell = ws.cell(1, col, name)
        cell.font, cell.border = Font(bold=True), Border(thin, thin, thin, thin)
        cell.alignment = Alignment(horizontal="center", vertical="top")
    for r, row in enumerate(rows, 2):
        for c, value in enumerate(row.values(), 1):
            if value is not None:  # missing values are absent cells
                ws.cell(r, c, value)
    wb.properties.created = TIMESTAMP
    buffer = io.BytesIO()
    wb.save(buffer)  # sets "modified" to now() and stamps zip entries with now()
    stamp = TIMESTAMP.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    deflated = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buffer) as src, zipfile.ZipFile(path, "w", deflated) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>" + stamp, data)
            fixed = zipfile.ZipInfo(info.filename, TIMESTAMP.timetuple()[:6])
            dst.writestr(fixed, data, compress_type=deflated)


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    out.mkdir(parents=True, exist_ok=True)
    companies, shuttles, reviews = make_tables(random.Random(SEED))
    write_csv(out / "companies.csv", companies)
    write_csv(out / "reviews.csv", reviews)
    write_xlsx(out / "shuttles.xlsx", shuttles)
    print(f"Wrote {len(companies)} companies, {len(shuttles)} shuttles and", end=" ")
    print(f"{len(reviews)} reviews to {out}")


if __name__ == "__main__":
    main()
