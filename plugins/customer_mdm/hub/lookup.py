"""In-memory lookup index of a serving version: golden ids by phone, e-mail and source record.

``GET /v1/lookup`` answers from here instead of scanning ``serving.golden_customer`` and
``serving.source_records`` per request. The index is built once per serving version and server
process (:meth:`customer_mdm.hub.serving.ServingReader.cached`: a new publication, or an erasure
scrub, gives a new version and a new index, without a restart) from the same rows the SQL of the
route read:

- phone: ``golden_customer.phone`` and ``source_records.phone_e164``;
- e-mail: ``golden_customer.email`` and ``source_records.email``;
- source record: ``customer_xref (source, source_id)``.

Memory: the keys are one sorted Arrow string array per kind (bytes of the values plus 8 bytes
of offset each) and an int32 golden-id code per key; the golden ids once. At 1M source records
about 100 MB per server process. Look-ups are binary searches (a few microseconds).
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

    from customer_mdm.hub.serving import ServingReader

log = logging.getLogger(__name__)

#: kind -> selects of (key, golden_id) over the serving tables (``union``: distinct pairs)
_SOURCES: dict[str, tuple[str, ...]] = {
    "phone": (
        "select phone as k, golden_id from serving.golden_customer",
        "select phone_e164 as k, golden_id from serving.source_records",
    ),
    "email": (
        "select email as k, golden_id from serving.golden_customer",
        "select email as k, golden_id from serving.source_records",
    ),
    "source": ("select source || chr(31) || source_id as k, golden_id from serving.customer_xref",),
}


def _union(selects: Sequence[str]) -> str:
    return " union ".join(f"select * from ({s}) as q where k is not null and golden_id is not null" for s in selects)


class _Keys(Sequence[str]):
    """A sorted Arrow string array as a Python sequence (for :mod:`bisect`)."""

    def __init__(self, array: pa.Array) -> None:
        self.array = array

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, i: Any) -> Any:
        return self.array[i].as_py()


@dataclass(frozen=True)
class _Table:
    keys: _Keys
    golden: np.ndarray  # int32 code into LookupIndex.golden_ids, per key


class LookupIndex:
    """Golden ids by phone (E.164), e-mail (standardised) or ``(source, source_id)``."""

    def __init__(self, tables: dict[str, _Table], golden_ids: pa.Array) -> None:
        self._tables = tables
        self._golden_ids = golden_ids

    @classmethod
    def build(cls, reader: ServingReader) -> LookupIndex:
        import pyarrow as pa
        import pyarrow.compute as pc

        started = time.perf_counter()
        frames = {kind: _fetch(reader, _union(selects)) for kind, selects in _SOURCES.items()}
        every = pa.chunked_array(
            [f.column("golden_id") for f in frames.values() if f.num_rows],
            type=pa.string(),
        )
        golden_ids = pc.unique(every) if len(every) else pa.array([], pa.string())
        tables = {}
        for kind, frame in frames.items():
            if frame.num_rows == 0:
                tables[kind] = _Table(_Keys(pa.array([], pa.string())), np.zeros(0, dtype=np.int32))
                continue
            # code-point order of the UTF-8 bytes = Python's order of the str values (bisect)
            order = pc.sort_indices(frame, sort_keys=[("k", "ascending"), ("golden_id", "ascending")])
            frame = frame.take(order)
            keys = frame.column("k").combine_chunks()
            codes = pc.index_in(frame.column("golden_id"), value_set=golden_ids).to_numpy(zero_copy_only=False)
            tables[kind] = _Table(_Keys(keys), np.asarray(codes, dtype=np.int32))
        index = cls(tables, golden_ids)
        log.info(
            "lookup index: %s keys in %.1f s",
            {k: len(t.keys) for k, t in tables.items()},
            time.perf_counter() - started,
        )
        return index

    def golden_ids(self, kind: str, key: str) -> list[str]:
        """The golden ids holding ``key`` (sorted, distinct)."""
        table = self._tables[kind]
        lo = bisect.bisect_left(table.keys, key)
        hi = bisect.bisect_right(table.keys, key, lo=lo)
        return sorted({str(self._golden_ids[int(c)].as_py()) for c in table.golden[lo:hi]})

    def by_phone(self, e164: str) -> list[str]:
        return self.golden_ids("phone", e164)

    def by_email(self, email: str) -> list[str]:
        return self.golden_ids("email", email)

    def by_source(self, source: str, source_id: str) -> list[str]:
        return self.golden_ids("source", f"{source}\x1f{source_id}")


def _fetch(reader: ServingReader, sql: str) -> pa.Table:
    """``(k, golden_id)`` rows as an Arrow table of strings (DuckDB: Arrow; PostgreSQL: rows)."""
    import pyarrow as pa

    schema = pa.schema([("k", pa.string()), ("golden_id", pa.string())])
    if reader.settings.target == "duckdb":
        import duckdb

        with reader.cursor() as cur:
            if cur is None:
                return schema.empty_table()
            try:
                table = cur.sql(sql).to_arrow_table()
            except duckdb.CatalogException:  # a table not built yet
                return schema.empty_table()
        return table.select(["k", "golden_id"]).cast(schema)
    _cols, rows = reader._run(sql, None)
    return pa.table(
        {"k": [str(r[0]) for r in rows], "golden_id": [str(r[1]) for r in rows]},
        schema=schema,
    )


def lookup_index(reader: ServingReader) -> LookupIndex:
    """The lookup index of the reader's current serving version (built on first use)."""
    return reader.cached("customer_mdm.hub.lookup.LookupIndex", LookupIndex.build)  # type: ignore[no-any-return]
