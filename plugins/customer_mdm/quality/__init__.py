"""Data-quality gates with Great Expectations 1.x, and write-audit-publish of the golden tables.

``suites``   the JSON suites under ``expectations/<layer>/`` (raw, standardised, golden): loading,
             severities, derived datasets, suite parameters
``gates``    :func:`validate_layer`: checkpoints with Data Docs, results, quarantine of failing rows
``publish``  :func:`audit_and_publish`: validate ``golden_build.*``, swap into ``marts`` atomically
``docs``     Data Docs page views with cached templates (referenced by the GX site config)

Importing this package does not import Great Expectations (it is imported on first validation).
"""

from customer_mdm.quality.gates import (
    QUARANTINE_CAP,
    AssetResult,
    ExpectationOutcome,
    LayerResult,
    QualityGateFailed,
    data_docs_index,
    gx_context,
    validate_layer,
)
from customer_mdm.quality.publish import PUBLICATIONS_TABLE, audit_and_publish, ensure_publications_table
from customer_mdm.quality.suites import LAYERS, SuiteSpec, load_layer, load_suite, suite_parameters

__all__ = [
    "LAYERS",
    "PUBLICATIONS_TABLE",
    "QUARANTINE_CAP",
    "AssetResult",
    "ExpectationOutcome",
    "LayerResult",
    "QualityGateFailed",
    "SuiteSpec",
    "audit_and_publish",
    "data_docs_index",
    "ensure_publications_table",
    "gx_context",
    "load_layer",
    "load_suite",
    "suite_parameters",
    "validate_layer",
]
