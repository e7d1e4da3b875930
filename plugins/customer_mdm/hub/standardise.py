"""The pipeline's standardisation of single typed-in values (lookups, self-service changes).

Phones go through :func:`customer_mdm.standardize.phones.standardize_phones` (the same code the
standardise step runs); e-mails through a Python rendering of the dbt macros ``email_clean`` and
``email_is_valid`` plus the seed ``ref_email_domain_corrections``, as int_customer_records does.
"""

from __future__ import annotations

import csv
import functools
import re
import unicodedata

from customer_mdm.config import Settings

_EMAIL_VALID = re.compile(r"^[a-z0-9._%+-]+@[a-z0-9-]+([.][a-z0-9-]+)*[.][a-z]{2,}$")


def standard_mobile(text: str | None) -> str | None:
    """E.164 of a valid phone number as the pipeline standardises it, else None."""
    if text is None or not str(text).strip() or len(str(text)) > 64:
        return None
    import pandas as pd

    from customer_mdm.standardize.phones import standardize_phones

    row = standardize_phones(pd.Series([str(text)], dtype=object)).iloc[0]
    value = row["phone_e164"]
    return str(value) if bool(row["phone_valid"]) and isinstance(value, str) else None


@functools.cache
def _domain_fixes(root: str) -> dict[str, str]:
    path = Settings.from_env(env={}, project_root=root).dbt_project_dir / "seeds" / "ref_email_domain_corrections.csv"
    try:
        with path.open(encoding="utf-8") as fh:
            return {r["typo_domain"]: r["domain"] for r in csv.DictReader(fh)}
    except FileNotFoundError:
        return {}


def standard_email(text: str | None, settings: Settings | None = None) -> str | None:
    """The e-mail as int_customer_records standardises it (clean, domain typo fixed), else None."""
    if text is None or len(str(text)) > 320:
        return None
    cleaned = str(text).lower()
    for old, new in ((" ", ""), ("\t", ""), ("\u3000", ""), ("＠", "@"), ("。", ".")):
        cleaned = cleaned.replace(old, new)
    if cleaned.count("@") != 1:
        return None
    local, domain = cleaned.split("@")
    root = str((settings or Settings.from_env(env={})).project_root)
    domain = _domain_fixes(root).get(domain, domain)
    email = f"{local}@{domain}"
    return email if _EMAIL_VALID.match(email) else None


def clean_text(text: str | None, limit: int = 500) -> str | None:
    """NFKC, trimmed, at most ``limit`` characters; None when empty."""
    if text is None:
        return None
    value = unicodedata.normalize("NFKC", str(text)).strip()
    return value[:limit] or None
