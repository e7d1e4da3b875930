"""Data Docs page views that share compiled Jinja templates across builds.

Great Expectations 1.24 creates a new Jinja environment for every Data Docs build and compiles
its ~50 templates again each time: about 1.5 s per checkpoint run, most of a small validation.
These views are GX's own page views with one shared in-memory bytecode cache, configured in the
Data Docs site of :func:`customer_mdm.quality.gates.gx_context` (``site_section_builders`` and
``site_index_builder`` ``view``, GX's documented extension point). Output is identical.
"""

from __future__ import annotations

import threading
from typing import Any

from great_expectations.render.view import DefaultJinjaIndexPageView, DefaultJinjaPageView
from jinja2 import BytecodeCache
from jinja2.bccache import Bucket


class _MemoryBytecodeCache(BytecodeCache):
    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def load_bytecode(self, bucket: Bucket) -> None:
        with self._lock:
            code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: Bucket) -> None:
        with self._lock:
            self._code[bucket.key] = bucket.bytecode_to_string()


_CACHE = _MemoryBytecodeCache()


class CachedJinjaPageView(DefaultJinjaPageView):
    """``DefaultJinjaPageView`` with the shared template bytecode cache."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.env.bytecode_cache = _CACHE


class CachedJinjaIndexPageView(DefaultJinjaIndexPageView):
    """``DefaultJinjaIndexPageView`` with the shared template bytecode cache."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.env.bytecode_cache = _CACHE
