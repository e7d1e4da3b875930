"""Case tables for the standardiser tests: every raw value of a module's tables is standardised
in ONE batch call (as the pipeline does), and single cases are read from that batch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy


class CaseTable:
    def __init__(self, standardize: Callable[[pd.Series], pd.DataFrame]) -> None:
        self._standardize = standardize
        self._raw: list[str] = []
        self._result: pd.DataFrame | None = None

    def table(self, rows: list[Any]) -> list[Any]:
        """Register the raw values (first item of each row) of a parametrised case table."""
        for row in rows:
            raw = row[0] if isinstance(row, tuple) else row
            if isinstance(raw, str):
                self._raw.append(raw)
                self._result = None
        return rows

    @property
    def values(self) -> list[str]:
        return list(dict.fromkeys(self._raw))

    def __contains__(self, value: object) -> bool:
        return isinstance(value, str) and value in self._raw

    def result(self) -> pd.DataFrame:
        """All registered values standardised together, indexed by raw value."""
        if self._result is None:
            values = self.values
            self._result = self._standardize(pd.Series(values, dtype=object)).set_axis(values)
        return self._result

    def row(self, value: object) -> pd.Series:
        """One value's result: from the batch when registered, else standardised alone."""
        if value in self:
            return self.result().loc[value]
        return self._standardize(pd.Series([value], dtype=object)).iloc[0]

    def assert_batch_independent(self) -> None:
        """A value's result does not depend on the other values of the call (the caller standardises
        distinct values in batches of any composition) nor on the index, duplicates included."""
        values = self.values
        batch = self.result()
        for value in values[:: max(1, len(values) // 12)]:
            single = self._standardize(pd.Series([value], dtype=object))
            pd.testing.assert_frame_equal(single.reset_index(drop=True), batch.loc[[value]].reset_index(drop=True))
        plain = self._standardize(pd.Series(values[:5], dtype=object))
        odd = self._standardize(pd.Series(values[:5], index=["k", "k", "j", "k", "k"], dtype=object))
        assert list(odd.index) == ["k", "k", "j", "k", "k"]
        pd.testing.assert_frame_equal(odd.reset_index(drop=True), plain)


def raw_values(*domain: SearchStrategy[Any], nasty: list[str]) -> SearchStrategy[Any]:
    """What a raw column can hold: None, any text, the standardiser's own alphabet (``domain``),
    hostile strings, huge strings, and the wrong types."""
    return st.one_of(
        st.none(),
        st.text(),
        *domain,
        st.sampled_from(nasty),
        st.builds(lambda chunk, n: chunk * n, st.text(min_size=1, max_size=4), st.integers(500, 20000)),
        st.floats(allow_nan=True),
        st.integers(),
    )
