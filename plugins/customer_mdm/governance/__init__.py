"""Governance outputs: the data-quality scorecard (history in ``governance.scorecard_history``)
and its static HTML report. The worklist, consistency report and segments are dbt models in
``dbt_project/models/marts/governance``.

Typical use after the golden dbt step of a run::

    from customer_mdm.governance import record_scorecard, write_report

    record_scorecard(settings, run_id)   # golden_schema="golden_build" before publication
    write_report(settings)               # $MDM_HOME/reports/scorecard/index.html
"""

from customer_mdm.governance.report import write_report
from customer_mdm.governance.scorecard import (
    DIMENSIONS,
    HEADLINES,
    HISTORY_TABLE,
    METRICS,
    compute_scorecard,
    read_history,
    record_scorecard,
)

__all__ = [
    "DIMENSIONS",
    "HEADLINES",
    "HISTORY_TABLE",
    "METRICS",
    "compute_scorecard",
    "read_history",
    "record_scorecard",
    "write_report",
]
