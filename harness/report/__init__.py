"""The claims x pairs report of a recorded run: the matrix as data, rendered as text, Markdown and one
self-contained HTML page with figures.

Rendered from a run record (``<cache>/runs/``) and the cached evaluations alone: nothing is re-run.
Modules: ``runs`` (records and the latest pointer), ``matrix`` (the data), ``plots`` (figures and the
variant colours), ``readouts``, ``markdown``, ``page`` (HTML), ``render`` (writes both files).
"""

from harness.report.matrix import Matrix, build_matrix, jobs_line, matrix_text
from harness.report.render import Figures, figures, render, write_report
from harness.report.runs import RunFileError, latest_path, load_run, record_run

__all__ = ["Figures", "Matrix", "RunFileError", "build_matrix", "figures", "jobs_line", "latest_path", "load_run",
           "matrix_text", "record_run", "render", "write_report"]
