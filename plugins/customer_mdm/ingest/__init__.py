"""Ingestion of landing files into the raw schema (see :mod:`customer_mdm.ingest.loader`)."""

from customer_mdm.ingest.loader import FeedResult, FileOutcome, ingest_all, ingest_feed

__all__ = ["FeedResult", "FileOutcome", "ingest_all", "ingest_feed"]
