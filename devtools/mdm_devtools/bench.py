"""``make bench``: generate data at given sizes, run the pipeline, report time, memory and accuracy.

For each size (in source records; the generator makes about 2.2 person records per person) it
generates a landing zone (cached under ``$MDM_HOME/bench/landing-<people>``), runs the daily
steps in-process on a fresh DuckDB warehouse (no Airflow: the scheduler adds a constant, not a
per-record cost) and samples the resident memory of this process and its children (dbt runs as
a child) every 0.1 s. Then it scores the cross-reference against the generator's truth
(pairwise precision, recall, F1) and times an incremental run after a 1 % delta: a new CRM
batch holding second accounts of 1 % of the people (new ids, known persons). After the full
run the hub is served on loopback and match-on-entry is measured with 4 clients (latency,
throughput, call-centre accuracy: :mod:`mdm_devtools.hub_bench`), then the console's pages
as a signed-in steward sees them (review queue, customer search, customer 360:
:mod:`mdm_devtools.console_bench`); ``--no-hub`` skips both.
It prints a table and writes ``$MDM_HOME/bench/results.json`` and ``results.md`` (headed by the
command, the date, the commit and the machine: docs/benchmarks.md shows the latest).

    python -m mdm_devtools.bench --sizes 100000,1000000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from customer_mdm.config import Settings

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

RECORDS_PER_PERSON = 2.2


class PeakMemory:
    """Samples the summed RSS of this process and all its descendants; keeps the samples so the
    peak of each step can be read off afterwards (:meth:`peak_between`)."""

    def __init__(self, interval: float = 0.1) -> None:
        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self.peak = 0
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        import psutil

        total = 0
        for p in [self._proc, *self._proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = self._sample()
            self.samples.append((time.time(), rss))
            self.peak = max(self.peak, rss)
            self._stop.wait(self._interval)

    def peak_between(self, start: float, end: float) -> int:
        """The highest sample taken between two ``time.time()`` instants (0 if none)."""
        return max((rss for t, rss in self.samples if start <= t <= end + self._interval), default=0)

    def __enter__(self) -> PeakMemory:
        self.peak = self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class SizeResult:
    records_target: int
    people: int
    source_records: int = 0
    generate_seconds: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)
    total_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _landing_for(base: Path, people: int, seed: int) -> tuple[Path, int, float]:
    from mdm_devtools.generate import GENERATOR_VERSION, generate_landing

    landing = base / f"landing-{people}-{seed}"
    marker = landing / "_truth" / "summary.json"
    if marker.exists():
        info = json.loads(marker.read_text())
        if info.get("generator") == GENERATOR_VERSION:  # a landing of an older generator is rewritten
            return landing, int(info["person_records"]), float(info["seconds"])
    if landing.exists():
        shutil.rmtree(landing)
    summary = generate_landing(landing, people, seed=seed, days=3)
    person_records = sum(
        v for k, v in summary.records.items() if k in ("crm", "ecommerce_members", "callcenter", "store_pos")
    )
    marker.write_text(
        json.dumps({"person_records": person_records, "seconds": summary.seconds, "generator": GENERATOR_VERSION})
    )
    return landing, person_records, summary.seconds


def bench_size(base: Path, records: int, seed: int = 42, hub: bool = True) -> SizeResult:
    from customer_mdm.pipeline import new_run_id, run_governance, run_inline

    people = max(100, int(records / RECORDS_PER_PERSON))
    result = SizeResult(records_target=records, people=people)
    landing, result.source_records, result.generate_seconds = _landing_for(base, people, seed)
    home = base / f"home-{people}"
    if home.exists():
        shutil.rmtree(home)
    settings = Settings.from_env(env={}, home=home, landing=landing, target="duckdb")
    started = time.perf_counter()
    run_id = new_run_id()
    with PeakMemory() as full_mem:
        summary = run_inline(settings, run_id, governance=False)  # the daily DAG
    result.total_seconds = round(time.perf_counter() - started, 2)
    result.peak_rss_mb = round(full_mem.peak / 1024 / 1024, 1)
    started = time.perf_counter()
    with PeakMemory() as mem:
        run_governance(settings, run_id)  # the mdm_governance DAG, scheduled after each publication
    result.extra["governance"] = {
        "seconds": round(time.perf_counter() - started, 2),
        "peak_rss_mb": round(mem.peak / 1024 / 1024, 1),
    }
    for name, info in summary["steps"].items():
        key = "ingest" if name.startswith("ingest_") else name
        result.steps[key] = round(result.steps.get(key, 0.0) + float(info.get("seconds", 0.0)), 2)
    result.extra["step_peak_rss_mb"] = _step_peaks(settings, run_id, full_mem)
    result.extra["link"] = {
        k: summary["steps"]["link"].get(k) for k in ("pairs", "golden_ids", "largest_cluster", "review_queue")
    }
    result.extra["review_queue_share"] = _queue_share(summary["steps"]["link"], result.source_records)
    result.extra["accuracy"] = _accuracy(settings, landing)
    if hub:
        result.extra["hub"] = _hub(settings, landing, seed, people)
    result.extra["incremental"] = _incremental(settings, landing, result.total_seconds)
    lookups = summary["steps"].get("standardize", {}).get("lookups", {})
    result.extra["distinct_values_standardised"] = {k: v["new_values"] for k, v in lookups.items()}
    result.extra["rows_loaded"] = summary["rows_loaded"]
    return result


def _queue_share(link: dict[str, Any], records: int) -> float:
    """The review queue's pairs as a share of the person records (the issue's bar: under 1 %)."""
    return round(int(link.get("review_queue") or 0) / max(records, 1), 4)


def _accuracy(settings: Settings, landing: Path, extra_truth: pd.DataFrame | None = None) -> dict[str, Any]:
    import pandas as pd

    from customer_mdm.linkage.evaluate import pairwise_scores
    from customer_mdm.warehouse import connect

    with connect(settings) as wh:
        xref = wh.query_df("select source, source_id, golden_id from mdm.xref")
    truth = pd.read_csv(landing / "_truth" / "truth.csv", dtype=str)
    if extra_truth is not None:
        truth = pd.concat([truth, extra_truth], ignore_index=True)
    joined = xref.merge(truth, on=["source", "source_id"], how="inner")
    key = joined["source"] + ":" + joined["source_id"]
    scores = pairwise_scores(
        pd.DataFrame({"record_key": key, "cluster_id": joined["golden_id"]}),
        pd.DataFrame({"record_key": key, "person_id": joined["person_id"]}),
    )
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in scores.items()}


def _hub(settings: Settings, landing: Path, seed: int, people: int) -> dict[str, Any]:
    """Match-on-entry over HTTP after the full run (mdm_devtools.hub_bench)."""
    from mdm_devtools.hub_bench import bench_hub

    try:
        return bench_hub(settings, landing, seed, people, days=3)
    except Exception as exc:  # noqa: BLE001 - the pipeline's figures still count
        log.warning("hub bench failed: %s", type(exc).__name__)
        return {"error": type(exc).__name__}


def _incremental(settings: Settings, landing: Path, full_seconds: float) -> dict[str, Any]:
    """A 1 % delta (second CRM accounts of 1 % of people), then an incremental run."""
    import pandas as pd

    from customer_mdm.pipeline import new_run_id, run_inline

    truth = pd.read_csv(landing / "_truth" / "truth.csv", dtype=str)
    crm_truth = truth[truth["source"] == "crm"].set_index("source_id")["person_id"]
    frames = [
        pd.read_csv(p, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        for p in sorted((landing / "crm").glob("crm_*.csv"))
        if _utf8(p)
    ]
    crm = pd.concat(frames, ignore_index=True).drop_duplicates("crm_id", keep="last")
    n = max(1, int(len(truth) * 0.01))
    delta = crm.sample(n=min(n, len(crm)), random_state=7).copy()
    originals = delta["crm_id"].tolist()
    delta["crm_id"] = [f"D{i:07d}" for i in range(len(delta))]
    delta_dir = landing.parent / f"{landing.name}-delta"
    if delta_dir.exists():
        shutil.rmtree(delta_dir)
    # the delta landing zone holds the same files (hard links: no copy of hundreds of MB) plus the delta
    shutil.copytree(landing, delta_dir, ignore=shutil.ignore_patterns("_truth"), copy_function=_link_or_copy)
    delta.to_csv(delta_dir / "crm" / "crm_2099-01-01.csv", index=False)
    delta_settings = Settings.from_env(env={}, home=settings.home, landing=delta_dir, target=settings.target)
    started = time.perf_counter()
    run_id = new_run_id()
    with PeakMemory() as mem:
        summary = run_inline(delta_settings, run_id, governance=False)
    seconds = round(time.perf_counter() - started, 2)
    extra = pd.DataFrame(
        {"source": "crm", "source_id": delta["crm_id"], "person_id": [crm_truth.get(o) for o in originals]}
    )
    steps: dict[str, float] = {}
    for name, info in summary["steps"].items():  # the ingest steps (one per feed) summed into one
        key = "ingest" if name.startswith("ingest_") else name
        steps[key] = round(steps.get(key, 0.0) + float(info.get("seconds", 0.0)), 2)
    return {
        "delta_records": len(delta),
        "seconds": seconds,
        "share_of_full_run": round(seconds / full_seconds, 3) if full_seconds else None,
        "link_seconds": summary["steps"]["link"].get("seconds"),
        "link_mode": summary["steps"]["link"].get("mode"),
        "review_queue": summary["steps"]["link"].get("review_queue"),
        "steps": steps,
        "peak_rss_mb": round(mem.peak / 1024 / 1024, 1),
        "step_peak_rss_mb": _step_peaks(delta_settings, run_id, mem),
        "accuracy_after": _accuracy(delta_settings, landing, extra),
    }


def _step_peaks(settings: Settings, run_id: str, mem: PeakMemory) -> dict[str, float]:
    """Peak resident memory (MB) while each step of a run ran (ingest steps summed into one)."""
    from datetime import UTC

    from customer_mdm.warehouse import connect

    with connect(settings, read_only=True) as wh:
        rows = wh.query("select step, started_at, finished_at from ops.run_steps where run_id = ?", [run_id])
    peaks: dict[str, float] = {}
    for name, started, finished in rows:
        key = "ingest" if name.startswith("ingest_") else name
        peak = mem.peak_between(started.replace(tzinfo=UTC).timestamp(), finished.replace(tzinfo=UTC).timestamp())
        peaks[key] = max(peaks.get(key, 0.0), round(peak / 1024 / 1024, 1))
    return peaks


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system
        shutil.copy2(src, dst)


def _utf8(path: Path) -> bool:
    try:
        path.read_bytes().decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False  # the legacy GB18030 export: its records are in the later UTF-8 batches too


def render(results: list[SizeResult]) -> str:
    steps: list[str] = []
    for r in results:
        steps += [s for s in r.steps if s not in steps]
    head = [
        "source records",
        "people",
        *[f"{s} s" for s in steps],
        "total s",
        "peak RSS MB",
        "precision",
        "recall",
        "F1",
        "review queue",
        "1% delta s",
        "delta/full",
        "governance s",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        acc, inc = r.extra.get("accuracy", {}), r.extra.get("incremental", {})
        cells = [
            f"{r.source_records:,}",
            f"{r.people:,}",
            *[f"{r.steps.get(s, 0):.1f}" for s in steps],
            f"{r.total_seconds:.1f}",
            f"{r.peak_rss_mb:,.0f}",
            f"{acc.get('precision', 0):.4f}",
            f"{acc.get('recall', 0):.4f}",
            f"{acc.get('f1', 0):.4f}",
            f"{r.extra.get('link', {}).get('review_queue') or 0:,} ({r.extra.get('review_queue_share', 0):.2%})",
            f"{inc.get('seconds', 0):.1f}",
            f"{inc.get('share_of_full_run', 0):.2f}",
            f"{r.extra.get('governance', {}).get('seconds', 0):.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_stages(r: SizeResult) -> str:
    """Per stage: wall time and peak memory of the full run and of the 1 % delta run."""
    inc = r.extra.get("incremental", {})
    full_peaks, inc_peaks = r.extra.get("step_peak_rss_mb", {}), inc.get("step_peak_rss_mb", {})
    inc_steps = inc.get("steps", {})
    lines = [
        f"stages at {r.source_records:,} source records",
        "| stage | full s | full peak MB | 1% delta s | delta peak MB |",
        "|---|---|---|---|---|",
    ]
    for name in [*r.steps, *[k for k in inc_steps if k not in r.steps]]:
        lines.append(
            f"| {name} | {r.steps.get(name, 0):.1f} | {full_peaks.get(name, 0):,.0f} "
            f"| {float(inc_steps.get(name, 0)):.1f} | {inc_peaks.get(name, 0):,.0f} |"
        )
    lines.append(
        f"| **total** | {r.total_seconds:.1f} | {r.peak_rss_mb:,.0f} "
        f"| {inc.get('seconds', 0):.1f} | {inc.get('peak_rss_mb', 0):,.0f} |"
    )
    return "\n".join(lines)


def machine_header(argv: list[str]) -> str:
    """Where the figures come from: the command, the date, the commit and the machine."""
    import platform
    import subprocess
    from datetime import UTC, datetime

    import duckdb
    import psutil

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except OSError:
        commit = ""
    command = " ".join(["python -m mdm_devtools.bench", *argv])
    return (
        f"`{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit or 'unknown'}\n\n"
        f"machine: {os.cpu_count()} cores ({cpu}), {psutil.virtual_memory().total / 2**30:.0f} GB RAM, "
        f"{platform.system()} {platform.release()}, Python {sys.version.split()[0]}, DuckDB {duckdb.__version__}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000", help="comma-separated source-record counts")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=None, help="bench directory (default $MDM_HOME/bench)")
    parser.add_argument("--no-hub", dest="hub", action="store_false", help="skip the hub (mdm serve) figures")
    args = parser.parse_args(argv)
    header = machine_header(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    base = args.out or Settings.from_env().home / "bench"
    base.mkdir(parents=True, exist_ok=True)
    results = []
    for size in (int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()):
        print(f"benchmarking {size:,} source records ...", flush=True)
        results.append(bench_size(base, size, args.seed, hub=args.hub))
        print(render(results[-1:]) + "\n\n" + render_stages(results[-1]), flush=True)
    table = render(results) + "".join("\n\n" + render_stages(r) for r in results)
    if args.hub:
        from mdm_devtools.console_bench import render_console
        from mdm_devtools.hub_bench import render_hub

        hubs = [(r.source_records, r.extra.get("hub", {})) for r in results]
        table += "\n\n" + render_hub(hubs)
        table += "\n\n" + render_console([(n, h.get("console", {})) for n, h in hubs])
    (base / "results.json").write_text(json.dumps([r.__dict__ for r in results], indent=2, default=str))
    (base / "results.md").write_text(header + "\n\n" + table + "\n")
    print("\n" + header + "\n\n" + table)
    print(f"\nfigures written to {base / 'results.json'} and {base / 'results.md'}")


if __name__ == "__main__":
    main()
