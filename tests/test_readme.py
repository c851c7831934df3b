"""The README's walk-through works as written: its claim file and its pair, run through the plugin."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def block_after(marker: str, language: str) -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- {marker} -->\s*```{language}\n(.*?)```", text, re.S)
    assert match, f"README.md has no {language} block after <!-- {marker} -->"
    return match.group(1)


@pytest.mark.slow
def test_walkthrough_claim_and_pair_run_as_written(tmp_path: Path) -> None:
    claim = block_after("walkthrough-claim", "python")
    (tmp_path / "test_learning_rate.py").write_text(claim)
    pair = yaml.safe_load(block_after("walkthrough-pair", "yaml"))
    fixtures = yaml.safe_load((ROOT / "fixtures" / "organisms.yaml").read_text())
    fixtures["pairs"] = pair  # only the new pair, with the real file's defaults
    (tmp_path / "pairs.yaml").write_text(yaml.safe_dump(fixtures))
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "test_learning_rate.py", "-p", "harness.plugin", "-k", "arith-2digit",
         "--pairs", str(tmp_path / "pairs.yaml"), "--budget", "smoke", "--claims-cache", str(tmp_path / "cache"),
         "-p", "no:cacheprovider", "-q"],
        cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "CLAIMS_PROGRESS": "0"}, timeout=600,
    )
    out = run.stdout + run.stderr
    assert "test_ten_times_the_learning_rate_still_improves_pass_at_1[arith-2digit]" in out or "claims x pairs" in out
    assert re.search(r"^1 (passed|failed|inconclusive|vacuous)", out.splitlines()[-1]), out[-3000:]
    assert "error" not in out.splitlines()[-1], out[-3000:]
    assert "arith-2digit (pass@64=" in out  # the summary matrix shows the new pair with its alignment
