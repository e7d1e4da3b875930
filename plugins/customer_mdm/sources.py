"""The landing-zone contract as data: which files each reference source delivers.

A *feed* is one kind of file inside a source folder (``ecommerce/`` delivers two feeds:
members and orders). Each feed lands in one raw table, ``raw.<feed name>``, holding every
contract column as text plus the lineage columns. This module is imported by the DAG files,
so it must stay free of heavy imports.

The feeds themselves are declared in :mod:`customer_mdm.plan` (with their staging model, whether
they carry a person, what is standardised); this module looks them up. To add a source of your
own, add a :class:`Feed` to ``plan.FEEDS`` (or register one with :func:`register_feed`) and its
staging model in ``dbt_project/models/staging``.
"""

from __future__ import annotations

from customer_mdm.plan import FEEDS, LINEAGE_COLUMNS, Feed, person_sources

__all__ = ["FEEDS", "LINEAGE_COLUMNS", "PERSON_SOURCES", "Feed", "feed", "feed_for_file", "register_feed"]


def source_folders() -> list[str]:
    """The source folders of the landing zone, in processing order."""
    return list(dict.fromkeys(f.folder for f in FEEDS))


#: Sources whose records describe a person, with the id column used in the cross-reference.
PERSON_SOURCES: dict[str, str] = person_sources()


def feed(name: str) -> Feed:
    for f in FEEDS:
        if f.name == name:
            return f
    raise KeyError(f"unknown feed {name!r}; known feeds: {', '.join(f.name for f in FEEDS)}")


def feeds_in_folder(folder: str) -> list[Feed]:
    return [f for f in FEEDS if f.folder == folder]


def feed_for_file(folder: str, file_name: str) -> Feed | None:
    """The feed a landing file belongs to, or None when its name matches no pattern."""
    for f in feeds_in_folder(folder):
        if f.matches(file_name):
            return f
    return None


def register_feed(new: Feed) -> None:
    """Add a custom feed (a source of your own). Its name must be new."""
    if any(f.name == new.name for f in FEEDS):
        raise ValueError(f"feed {new.name!r} exists already")
    FEEDS.append(new)
