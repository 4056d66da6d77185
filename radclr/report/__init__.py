"""Results a user can read: the self-contained HTML report and the seed papers' table layouts.

    from radclr.report import write_report, make_table
    write_report("runs/demo")                       # -> runs/demo/report.html (+ metrics.json if missing)
    make_table(["runs/a", "runs/b"], "auc-per-finding", published=True)

Modules: ``results`` (a run's metrics.json behind one accessor), ``tables`` (``radclr table``), ``published``
(the papers' own numbers), ``context`` / ``sections`` / ``html`` (``radclr report``), ``build`` (the page).
"""

from radclr.report.build import write_report
from radclr.report.tables import make_table, to_markdown, write_csv

__all__ = ["write_report", "make_table", "to_markdown", "write_csv"]
