"""CSV files for people to open: cells a spreadsheet would run as a formula are neutralised.

Source data is customer-typed text (names, addresses, notes). A cell that starts with ``=``,
``+``, ``-``, ``@`` (or a tab / carriage return, which some spreadsheets strip before looking)
is a formula to Excel, LibreOffice and Google Sheets: ``=cmd|' /C calc'!A0`` or
``=HYPERLINK(...)`` in a customer's name would run on a steward's machine (CSV injection,
OWASP). Such text cells get a leading apostrophe, which spreadsheets show as text and do not
evaluate. Plain numbers (``-12.5``, an E.164 phone ``+8613812345678``) are left alone: as
formulas they only evaluate to themselves.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?[0-9]+(\.[0-9]+)?$")


def neutralise_cell(value: Any) -> Any:
    """``value`` with a leading ``'`` when a spreadsheet would read it as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES) and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells (and column names) cannot run as formulas."""
    import pandas as pd

    out = frame.copy()
    for column in out.columns:
        series = out[column]
        if pd.api.types.is_object_dtype(series.dtype) or pd.api.types.is_string_dtype(series.dtype):
            out[column] = series.astype(object).map(neutralise_cell)
    out.columns = [neutralise_cell(str(c)) for c in out.columns]
    return out


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` as UTF-8 CSV with formula-like cells neutralised, readable by its owner
    only (mode 0600; missing directories 0700: it holds personal data)."""
    from customer_mdm.private_files import open_private

    with open_private(path, "w", encoding="utf-8", newline="") as fh:
        neutralise_frame(frame).to_csv(fh, index=False)
    return path
