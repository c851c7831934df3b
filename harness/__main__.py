"""Command line: ``python -m harness report`` and ``python -m harness align``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.cache import Cache
from harness.specs import SpecError


def _report(args: argparse.Namespace) -> int:
    from harness.report import latest_run, render

    cache = Cache(args.cache)
    try:
        run = json.loads(Path(args.run).read_text()) if args.run else latest_run(cache.root)
    except (FileNotFoundError, ValueError) as exc:
        print(f"harness report: {exc}", file=sys.stderr)
        return 2
    md, page = render(run, cache.root, Path(args.out))
    print(f"report: {md} and {page}")
    return 0


def _align(args: argparse.Namespace) -> int:
    """Measure (or load) each pair's alignment: base pass@1, pass@8, pass@K and the guessing baseline."""
    from harness.jobs import evaluate
    from harness.loading import load_fixtures
    from harness.tasks import get_task

    cache = Cache(args.cache)
    if args.only:
        known = [pair.id for path in args.pairs for pair in load_fixtures(path)]
        unknown = [name for name in args.only if name not in known]
        if unknown:
            raise SpecError(f"unknown pair id(s) {', '.join(unknown)}; known: {', '.join(known)}")
    print(f"{'pair':<18} {'pass@1':>7} {'pass@8':>7} {'pass@K':>9} {'greedy':>7} {'guess@1':>8} {'guess@8':>8} "
          f"{'guess@K':>8}")
    for path in args.pairs:
        for pair in load_fixtures(path):
            if args.only and pair.id not in args.only:
                continue
            result = evaluate(pair.eval, cache)
            k = pair.alignment_k
            guess = get_task(pair.task).guessing_pass_at_k(result.problems, [1, 8, k])
            print(f"{pair.id:<18} {result.pass_at_k(1):7.3f} {result.pass_at_k(min(8, result.n)):7.3f} "
                  f"{result.pass_at_k(k):7.3f}@{k:<2} {result.greedy_correct.mean():7.3f} {guess[1]:8.3f} "
                  f"{guess[8]:8.3f} {guess[k]:8.3f}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    cache_help = "job cache directory (default: $CLAIMS_CACHE or .cache/claims)"
    parser = argparse.ArgumentParser(prog="python -m harness")
    parser.add_argument("--cache", default=None, help=cache_help)
    # --cache also after the command (SUPPRESS: a subparser's default would overwrite the value given before it)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--cache", default=argparse.SUPPRESS, help=cache_help)
    sub = parser.add_subparsers(dest="command", required=True)
    report = sub.add_parser("report", parents=[common],
                            help="render the latest claims run from the cache (Markdown + HTML)")
    report.add_argument("--out", default="reports", help="output directory (default: reports/)")
    report.add_argument("--run", default=None, help="a recorded run (<cache>/runs/run-*.json; default: the latest)")
    report.set_defaults(func=_report)
    align = sub.add_parser("align", parents=[common], help="measure the alignment of every pair in fixtures files")
    align.add_argument("pairs", nargs="*", default=["fixtures/organisms.yaml"])
    align.add_argument("--only", nargs="*", default=None, help="pair ids to measure")
    align.set_defaults(func=_align)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SpecError as exc:
        print(f"python -m harness {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
