"""A local job worker (``python -m harness.worker``): units of work in as JSON lines on stdin, answers out.

Started by ``harness.executors.LocalWorkers``. Its stdout carries only the answers; whatever the jobs
print goes to stderr (the worker's log).
"""

from __future__ import annotations

import json
import os
import sys

from harness.executors import run_unit


def main() -> None:
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    for line in sys.stdin:
        answers.write(json.dumps(run_unit(json.loads(line))) + "\n")


if __name__ == "__main__":
    main()
