"""Train a new linkage model version from the warehouse and make it current."""

from __future__ import annotations

import logging
import time
from typing import Any

from customer_mdm.config import Settings
from customer_mdm.warehouse import connect

log = logging.getLogger(__name__)


def train_and_publish(settings: Settings) -> dict[str, Any]:
    from customer_mdm.linkage.model import load_current, save, train
    from customer_mdm.linkage.step import read_records

    started = time.perf_counter()
    with connect(settings) as wh:
        records = read_records(wh)
    model = train(records)
    path = save(model, settings.models_dir / "linkage")
    current = load_current(settings.models_dir / "linkage")
    result = {
        "model_version": f"v{current.version}",
        "path": str(path),
        "training_records": len(records),
        "seconds": round(time.perf_counter() - started, 1),
    }
    log.info("linkage model %s trained on %d records", current.version, len(records))
    return result
