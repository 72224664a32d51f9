"""JUnit XML for CI systems: one testcase per smoke check.

Failure text is the check's evidence (what was observed); the hint goes to the testcase's
system-out, with the evidence of passing checks (latencies, socket ids). Skips carry their reason.
The file is written atomically: a CI job never reads half a report.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from pathlib import Path

from rtctl.ops.smoke import SmokeReport

SUITE_NAME = "rtctl smoke"
CLASS_NAME = "rtctl.ops.smoke"


def to_xml(report: SmokeReport) -> ET.ElementTree:
    counts = report.counts()
    # The same totals on the file's <testsuites> and on its one <testsuite>.
    totals = {
        "name": SUITE_NAME,
        "tests": str(len(report.checks)),
        "failures": str(counts["fail"]),
        "errors": "0",
        "skipped": str(counts["skip"]),
        "time": f"{report.duration_ms / 1000:.3f}",
    }
    root = ET.Element("testsuites", totals)
    suite = ET.SubElement(
        root,
        "testsuite",
        totals,
        timestamp=report.started_at[:19],  # the JUnit schema: ISO 8601 without zone (UTC here)
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("run_id", report.run_id),
        ("provider", report.provider or ""),
        ("verdict", report.verdict),
        ("exit_code", str(report.exit_code)),
        *sorted(report.target.items()),
    ):
        ET.SubElement(properties, "property", name=name, value=value)
    for check in report.checks:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=CLASS_NAME,
            name=check.name,
            time=f"{check.duration_ms / 1000:.3f}",
        )
        if check.status == "fail":
            failure = ET.SubElement(
                case, "failure", message=check.evidence, type=check.failure or "failed"
            )
            failure.text = check.evidence
            if check.hint:
                ET.SubElement(case, "system-out").text = f"hint: {check.hint}"
        elif check.status == "skip":
            ET.SubElement(case, "skipped", message=check.evidence)
        else:
            ET.SubElement(case, "system-out").text = check.evidence
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(report: SmokeReport, path: Path) -> None:
    """Write the report to ``path`` atomically (a CI job never reads half a report)."""
    from rtctl.envfile import atomic_write

    buffer = io.BytesIO()
    to_xml(report).write(buffer, encoding="utf-8", xml_declaration=True)
    atomic_write(path, buffer.getvalue())
