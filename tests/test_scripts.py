"""The diagnostic scripts under scripts/, run as a user runs them, on a tiny pair."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from helpers import RECIPE, REPO, subprocess_env

PAIRS = """\
defaults:
  eval: {num_problems: 8, n: 4, max_new_tokens: 4}
  alignment_k: 4
  recipe: tiny.yaml
pairs:
  tiny:
    model: {organism: {mix: [{task: {family: arithmetic, params: {digits: 1}}}], steps: 60}}
    task: {family: arithmetic, params: {digits: 1}}
"""


def script(directory: Path, name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / name), *args], cwd=directory, capture_output=True,
                          text=True, env=subprocess_env(CLAIMS_CACHE=str(directory / "cache")), timeout=600)


def test_clipping_reports_the_clipped_fraction_at_each_lr_multiple(tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(RECIPE)
    (tmp_path / "pairs.yaml").write_text(PAIRS)
    done = script(tmp_path, "clipping.py", "pairs.yaml", "tiny", "--lr-scale", "1", "30", "--rewards", "ground_truth",
                  "random", "--seeds", "2", "--budget", "smoke")
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"tiny under tiny: lr 0\.0003, 4 steps, clip 0\.2/0\.28; base pass@1 \d\.\d{3}", lines[0])
    rows = [re.fullmatch(r" *(\w+) lr x(\d+) *: pass@1 change ([-+]\d\.\d{3}) ([-+]\d\.\d{3}); clipped (\d+\.\d{4})%; "
                         r"informative groups \d+\.\d%", line) for line in lines[1:]]
    assert all(rows) and [(r[1], r[2]) for r in rows] == [("ground_truth", "1"), ("ground_truth", "30"),
                                                          ("random", "1"), ("random", "30")]
    clipped = {(r[1], r[2]): float(r[5]) for r in rows}
    for reward in ("ground_truth", "random"):  # 30 times the update: more tokens leave the clip range
        assert clipped[(reward, "30")] > clipped[(reward, "1")]

    wrong = script(tmp_path, "clipping.py", "pairs.yaml", "huge")
    assert wrong.returncode == 2 and wrong.stderr.splitlines()[-1].endswith("pairs.yaml: no pair 'huge'")


def test_calibrate_prints_the_rule_and_the_levelled_budget(tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(RECIPE)
    (tmp_path / "pairs.yaml").write_text(PAIRS)
    done = script(tmp_path, "calibrate.py", "pairs.yaml", "tiny", "--steps", "2", "4", "--seeds", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    rule = re.fullmatch(r"tiny: weight rms (\d\.\d{4}); rule lr = 1e-06 x \1 / 0\.02 = ([\d.e-]+)", lines[0])
    assert rule and float(rule[2]) == float(f"{1e-6 * float(rule[1]) / 0.02:.2g}")
    assert re.fullmatch(r"base pass@1 \d\.\d{3} pass@4 \d\.\d{3}", lines[1])
    rows = [re.fullmatch(r"steps +(\d+): pass@1 gain ([-+]\d\.\d{3}) ([-+]\d\.\d{3}) \(mean ([-+]\d\.\d{3})\); "
                         r"pass@4 \S+ \S+; clipped \d+\.\d{4}%; informative groups \d+\.\d%", line)
            for line in lines[2:4]]
    assert all(rows) and [r[1] for r in rows] == ["2", "4"]
    gains = {int(r[1]): float(r[4]) for r in rows}
    levelled = re.fullmatch(r"levelled off at (\d+) steps \(the first budget with >= 90% of the gain at 4 steps\)",
                            lines[4])
    assert levelled
    expected = 2 if gains[4] > 0 and gains[2] >= 0.9 * gains[4] else 4
    assert int(levelled[1]) == expected

    fixed = script(tmp_path, "calibrate.py", "pairs.yaml", "tiny", "--steps", "2", "--seeds", "1", "--lr", rule[2])
    assert fixed.returncode == 0, fixed.stderr[-3000:]  # the rule's own lr: its runs come from the cache
    assert fixed.stdout.splitlines()[0] == f"{lines[0]}; running at --lr {rule[2]}"

    wrong = script(tmp_path, "calibrate.py", "pairs.yaml", "huge")
    assert wrong.returncode == 2 and wrong.stderr.splitlines()[-1].endswith("pairs.yaml: no pair 'huge'")
