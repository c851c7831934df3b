"""Seeding and threading: the same spec and seed give bitwise-identical results on CPU."""

from __future__ import annotations

import os
import random

THREADS_ENV = "CLAIMS_THREADS"


def seed_everything(seed: int) -> None:
    """Prepare a job: seed Python, numpy and torch, one torch thread per process (DESIGN §7), quiet transformers."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    threads = int(os.environ.get(THREADS_ENV, "1"))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    quiet_transformers()


def quiet_transformers() -> None:
    """Silence transformers' own progress bars (weights loading, shard writing): jobs show one line each."""
    import warnings

    from transformers.utils import logging

    logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.")
