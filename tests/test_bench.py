"""The bench's own behaviour that a user meets before any timing: its warning about a cold suite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.__main__ import warn_if_suite_cold


@pytest.mark.slow
def test_a_cold_suite_is_announced_with_the_planners_estimate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CLAIMS_CACHE", str(tmp_path))
    warn_if_suite_cold("smoke")
    err = capsys.readouterr().err
    assert f"no claims run with --budget smoke is recorded in {tmp_path}" in err
    assert "(the planner: critical path" in err and "min on 2 workers)" in err


def test_a_recorded_run_of_the_budget_needs_no_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CLAIMS_CACHE", str(tmp_path))
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "run-20261201-000000.json").write_text(json.dumps({"budget": "smoke"}))
    warn_if_suite_cold("smoke")
    assert capsys.readouterr().err == ""
