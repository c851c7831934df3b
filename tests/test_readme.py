"""The README's walk-throughs work as written (its claim and pair; its task family, reward and the claim using
them), and it documents every option of pytest's "claims" group and of ``python -m harness``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import subprocess_env

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def block_after(marker: str, language: str) -> str:
    match = re.search(rf"<!-- {marker} -->\s*```{language}\n(.*?)```", README, re.S)
    assert match, f"README.md has no {language} block after <!-- {marker} -->"
    return match.group(1)


def with_pairs(directory: Path, marker: str) -> Path:
    """A fixtures file holding only the README's pair, with the real organisms.yaml's defaults."""
    fixtures = yaml.safe_load((ROOT / "fixtures" / "organisms.yaml").read_text())
    fixtures["pairs"] = yaml.safe_load(block_after(marker, "yaml"))
    path = directory / "pairs.yaml"
    path.write_text(yaml.safe_dump(fixtures))
    return path


def run(directory: Path, *args: str, timeout: float = 900) -> str:
    process = subprocess.run([sys.executable, *args], cwd=directory, capture_output=True, text=True, timeout=timeout,
                             env=subprocess_env())
    return process.stdout + process.stderr + f"\nexit {process.returncode}"


def pytest_session(directory: Path, claim_file: str, pair: str) -> str:
    return run(directory, "-m", "pytest", claim_file, "-p", "harness.plugin", "-k", pair, "--pairs", "pairs.yaml",
               "--budget", "smoke", "--claims-cache", str(directory / "cache"), "-p", "no:cacheprovider", "-q")


def assert_one_verdict(out: str, test: str, pair: str) -> None:
    assert f"{test}[{pair}]" in out or "claims x pairs" in out, out[-3000:]
    summary = [line for line in out.splitlines() if re.match(r"1 (passed|failed|inconclusive|not_exercised)", line)]
    assert len(summary) == 1 and "error" not in summary[0], out[-3000:]
    assert f"{pair} (pass@64=" in out  # the summary matrix shows the new pair with its alignment


@pytest.mark.slow
def test_walkthrough_claim_and_pair_run_as_written(tmp_path: Path) -> None:
    (tmp_path / "test_two_shot.py").write_text(block_after("walkthrough-claim", "python"))
    with_pairs(tmp_path, "walkthrough-pair")
    out = pytest_session(tmp_path, "test_two_shot.py", "arith-2digit")
    assert_one_verdict(out, "test_two_examples_match_the_full_set", "arith-2digit")


@pytest.mark.slow
def test_walkthrough_family_and_reward_run_as_written(tmp_path: Path) -> None:
    # the README's claims/conftest.py: the family, then the reward "continued" in the same file
    (tmp_path / "conftest.py").write_text(block_after("walkthrough-family", "python")
                                          + block_after("walkthrough-reward", "python"))
    (tmp_path / "test_length_penalty.py").write_text(block_after("walkthrough-reward-claim", "python"))
    with_pairs(tmp_path, "walkthrough-family-pair")
    out = pytest_session(tmp_path, "test_length_penalty.py", "max-2digit")
    assert_one_verdict(out, "test_a_length_penalty_keeps_most_of_the_gain", "max-2digit")
    # the command line, given the same conftest.py, measures the pair from the cache the session filled
    out = run(tmp_path, "-m", "harness", "-p", "conftest.py", "align", "pairs.yaml", "--only", "max-2digit",
              "--claims-cache", str(tmp_path / "cache"), timeout=300)
    assert out.endswith("exit 0") and re.search(r"^max-2digit +\d\.\d{3}", out, re.M), out[-3000:]


def test_every_option_is_documented() -> None:
    import harness.__main__

    plugin_options = re.findall(r'addoption\("(--[\w-]+)"', (ROOT / "harness" / "plugin.py").read_text())
    cli_options = re.findall(r'add_argument\("(-[\w-]+)"', Path(harness.__main__.__file__).read_text())
    assert "--claims-cache" in plugin_options and "--claims-cache" in cli_options
    assert {"-p", "--pairs", "--only", "--out", "--run"} <= set(cli_options)
    for option in {*plugin_options, *cli_options}:
        assert re.search(rf"`(\w+ )?{option}[ `]", README), f"README.md does not document {option}"
