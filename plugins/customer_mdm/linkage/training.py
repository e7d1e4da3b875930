"""Train a new linkage model version, make it current and publish its charts next to the reports."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from customer_mdm.config import Settings
from customer_mdm.linkage.records import prepare_evidence, read_records
from customer_mdm.warehouse import connect

if TYPE_CHECKING:
    import pandas as pd

    from customer_mdm.linkage.model import TrainedModel

log = logging.getLogger(__name__)


def model_dir(settings: Settings) -> Path:
    return settings.models_dir / "linkage"


def train_and_save(settings: Settings, records: pd.DataFrame) -> TrainedModel:
    """Train on ``records``, save the next version, make it current and publish its charts."""
    from customer_mdm.linkage.engines import make_engine
    from customer_mdm.linkage.model import load_current, save, train

    path = save(train(records, engine=make_engine(settings)), model_dir(settings))
    reports = settings.reports_dir / "linkage"
    reports.mkdir(parents=True, exist_ok=True)
    for chart in sorted(path.parent.glob(f"{path.stem}_*.html")):
        shutil.copy2(chart, reports / chart.name)
        # a stable name for the current model's chart, linked from the reports
        shutil.copy2(chart, reports / chart.name.replace(path.stem, "current_model"))
    return load_current(model_dir(settings))


def train_and_publish(settings: Settings) -> dict[str, Any]:
    """The training DAG's task and `mdm train`: a new model version from the warehouse."""
    started = time.perf_counter()
    with connect(settings) as wh:
        prepare_evidence(wh)  # fresh: the connection may have served an earlier step
        records = read_records(wh, content_hash=False)  # training reads fields, not state
    current = train_and_save(settings, records)
    log.info("linkage model v%s trained on %d records", current.version, len(records))
    return {
        "model_version": f"v{current.version}",
        "path": str(current.path),
        "charts": str(settings.reports_dir / "linkage"),
        "training_records": len(records),
        "seconds": round(time.perf_counter() - started, 1),
    }
