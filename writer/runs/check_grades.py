"""Grading a provider check's report: fail / pass / excellent per metric, on explicit
thresholds (writer/runs/check.py measures; the Providers page and the CLI show these)."""
from __future__ import annotations

from writer.generation.metrics import percentile

# metric → (pass below, excellent below); lower is better.
GRADES = {
    "connect_ms": (2000.0, 1000.0),
    "ttft_ms": (3000.0, 1500.0),  # graded on the p95
    "interruption_rate": (0.01, 0.001),
    "itl_cv": (0.5, 0.3),
}
# streams at once → (pass at least, excellent at least) success rate.
SUCCESS_GRADES = {10: (0.99, 1.0), 50: (0.95, 0.99), 100: (0.90, 0.98), 200: (0.85, 0.95)}


def level_thresholds(level: int) -> tuple[float, float]:
    """(pass at least, excellent at least) success rate for `level` streams at once."""
    known = sorted(SUCCESS_GRADES)
    below = [k for k in known if k <= level]
    return SUCCESS_GRADES[below[-1] if below else known[0]]


def grade_value(metric: str, value: float) -> str:
    passing, excellent = GRADES[metric]
    return "excellent" if value < excellent else "pass" if value < passing else "fail"


def grade_success(level: int, rate: float) -> str:
    passing, excellent = level_thresholds(level)
    return "excellent" if rate >= excellent else "pass" if rate >= passing else "fail"


def grade(report: dict) -> dict:
    """metric → fail | pass | excellent, for what was measured."""
    grades = {}
    if report.get("connect_ms") is not None:
        grades["connect_ms"] = grade_value("connect_ms", report["connect_ms"])
    elif report.get("errors") and any(e.startswith("connect") for e in report["errors"]):
        grades["connect_ms"] = "fail"
    ttft = report.get("ttft_ms")
    if ttft:
        grades["ttft_ms"] = grade_value("ttft_ms", ttft["p95"])
    elif any(e.startswith("ttft") for e in report.get("errors", ())):
        grades["ttft_ms"] = "fail"
    if report.get("interruption_rate") is not None:
        grades["interruption_rate"] = grade_value("interruption_rate", report["interruption_rate"])
    if report.get("itl_cv") is not None:
        grades["itl_cv"] = grade_value("itl_cv", report["itl_cv"])
    for level, result in (report.get("concurrency") or {}).items():
        if result.get("complete", True):
            grades[f"concurrency_{level}"] = grade_success(int(level), result["success_rate"])
    return grades


def summary(values: list[float], digits: int = 1) -> dict | None:
    """p50, p95, max and n of a measurement (None when there is none)."""
    if not values:
        return None
    return {"p50": round(percentile(values, 50), digits), "p95": round(percentile(values, 95), digits),
            "max": round(max(values), digits), "n": len(values)}
