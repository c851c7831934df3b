"""Command line: ``python -m harness [-p PLUGIN] [--claims-cache DIR] {report,align} ...``.

``-p`` and ``--claims-cache`` mean what they mean to pytest and go before or after the command;
``align`` takes fixtures files as arguments or with ``--pairs`` (repeatable, as pytest's).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from harness.cache import Cache, JobError
from harness.registry import load_plugins
from harness.report.matrix import HIGH_ALIGNMENT
from harness.specs import SpecError

DEFAULT_PAIRS = "fixtures/organisms.yaml"


def _share(value: str) -> float:
    """A number in (0, 1], for argparse."""
    try:
        share = float(value)
    except ValueError:
        share = math.nan
    if not 0 < share <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {value!r}")
    return share


def _report(args: argparse.Namespace) -> int:
    from harness.report import RunFileError, latest_path, load_run, render

    cache = Cache(args.cache)
    try:
        run = load_run(Path(args.run) if args.run else latest_path(cache.root))
    except RunFileError as exc:
        print(f"python -m harness report: {exc}", file=sys.stderr)
        return 2
    md, page = render(run, cache.root, Path(args.out) if args.out else Path("reports") / run["id"],
                      high_alignment=args.high_alignment)
    print(f"report: {md} and {page}")
    return 0


def _align(args: argparse.Namespace) -> int:
    """Measure (or load) each pair's alignment: base pass@1, pass@8, pass@K and the guessing baseline."""
    from harness.jobs import evaluate
    from harness.loading import load_fixtures
    from harness.tasks import get_task

    cache = Cache(args.cache)
    files = [*args.files, *args.pairs] or [DEFAULT_PAIRS]
    if args.only:
        known = [pair.id for path in files for pair in load_fixtures(path)]
        unknown = [name for name in args.only if name not in known]
        if unknown:
            raise SpecError(f"unknown pair id(s) {', '.join(unknown)}; known: {', '.join(known)}")
    print(f"{'pair':<18} {'pass@1':>7} {'pass@8':>7} {'pass@K':>9} {'greedy':>7} {'guess@1':>8} {'guess@8':>8} "
          f"{'guess@K':>8}")
    for path in files:
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
    parser = argparse.ArgumentParser(prog="python -m harness")
    # -p and --claims-cache also after the command, into other names (SUPPRESS: a subparser's default would
    # overwrite the value given before the command)
    common = argparse.ArgumentParser(add_help=False)
    for options, default in ((parser, None), (common, argparse.SUPPRESS)):
        options.add_argument("--claims-cache", dest="cache", default=default, metavar="DIR",
                             help="job cache directory (default: $CLAIMS_CACHE or .cache/claims), as pytest's")
    parser.add_argument("-p", dest="plugins", action="append", default=[], metavar="PLUGIN",
                        help="a module name or .py file (a conftest.py too) that registers task families, rewards, "
                             "polarities or formats; repeatable, as pytest's -p")
    common.add_argument("-p", dest="more_plugins", action="append", default=argparse.SUPPRESS, metavar="PLUGIN",
                        help="as -p before the command")
    sub = parser.add_subparsers(dest="command", required=True)
    report = sub.add_parser("report", parents=[common],
                            help="render a recorded claims run (Markdown + HTML); default: the latest")
    report.add_argument("--out", default=None, help="output directory (default: reports/<run id>/)")
    report.add_argument("--run", default=None,
                        help="a recorded run (<cache>/runs/run-*.json; default: the one that finished last)")
    report.add_argument("--high-alignment", type=_share, default=HIGH_ALIGNMENT, metavar="X",
                        help="base pass@K from which a pair counts as highly aligned when verdicts are read against "
                             f"the paper's pattern (default {HIGH_ALIGNMENT}; the paper gives no number)")
    report.set_defaults(func=_report)
    align = sub.add_parser("align", parents=[common], help="measure the alignment of every pair in fixtures files")
    align.add_argument("files", nargs="*", metavar="FILE", help=f"fixtures files (default: {DEFAULT_PAIRS})")
    align.add_argument("--pairs", action="append", default=[], metavar="FILE",
                       help="a fixtures file, as pytest's --pairs; repeatable, adds to FILE arguments")
    align.add_argument("--only", nargs="*", default=None, metavar="ID", help="pair ids to measure")
    align.set_defaults(func=_align)
    args = parser.parse_args(argv)
    try:
        load_plugins([*args.plugins, *getattr(args, "more_plugins", [])])
        return args.func(args)
    except (SpecError, JobError) as exc:
        print(f"python -m harness {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
