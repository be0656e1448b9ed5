"""value_counts counts what group_counts sorts, and the report's timeline sums it by month."""

from __future__ import annotations

from typing import Any

from tiops.query import group_counts, rows_from_objects, value_counts
from tiops.report.panels import panel_data, parse_panels


def objects() -> list[dict[str, Any]]:
    found = []
    for number in range(60):
        found.append({
            "type": "indicator" if number % 3 else "malware",
            "id": f"indicator--00000000-0000-4000-8000-{number:012d}" if number % 3
            else f"malware--00000000-0000-4000-8000-{number:012d}",
            "created": f"20{20 + number % 5}-{1 + number % 12:02d}-0{1 + number % 9}T00:00:00Z",
            "labels": ["a", "b", "a"] if number % 4 == 0 else ["c"] if number % 4 == 1 else [],
            "confidence": number % 7 * 10,
            **({"x_flag": True} if number % 5 == 0 else {}),
        })
    return found


def test_value_counts_are_group_counts_unsorted() -> None:
    rows = rows_from_objects(objects())
    for field in ("type", "labels", "tags", "created", "confidence", "x_flag", "tlp", "absent"):
        assert sorted(group_counts(rows, field), key=repr) == sorted(value_counts(rows, field).items(), key=repr), field
    assert value_counts(rows, "labels")["a"] == 15  # a list counts each value once per object


def test_timeline_sums_the_counts_by_month() -> None:
    rows = rows_from_objects(objects())
    text = "panels:\n  - title: Per month\n    group-by: created\n    chart: timeline\n    limit: 4\n"
    panels, findings = parse_panels(text, "report.yaml", {key for row in rows for key in row.data})
    assert not findings
    data = panel_data(panels[0], rows)
    months: dict[str, int] = {}
    for value, count in group_counts(rows, "created"):
        months[value[:7]] = months.get(value[:7], 0) + count
    newest, older = sorted(months)[-4:], sorted(months)[:-4]
    # "rest": the older months, which the overview's "and N more" unfolds.
    assert data == {"kind": "timeline", "items": [(m, months[m]) for m in newest], "hidden": len(months) - 4,
                    "rest": [(m, months[m]) for m in older], "total": 60}
