"""``mdm-dev``: the developer commands (``python -m mdm_devtools`` does the same)."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def main() -> None:
    """Development tools of customer-mdm (not part of the runtime install or the Airflow image)."""


@main.command()
@click.option(
    "--entities", type=click.IntRange(min=1), default=1000, show_default=True, help="Number of real people to simulate."
)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Landing zone to write.")
@click.option(
    "--seed",
    type=click.IntRange(min=0, max=2**32 - 1),
    default=42,
    show_default=True,
    help="Random seed: the same seed writes the same files.",
)
@click.option("--days", type=click.IntRange(min=1), default=3, show_default=True, help="Export batches per source.")
def generate(entities: int, out: Path, seed: int, days: int) -> None:
    """Write a deterministic demo landing zone (every source) plus ground truth."""
    from mdm_devtools.generate import generate_landing

    summary = generate_landing(out, entities, seed=seed, days=days)
    click.echo(
        f"wrote {sum(summary.records.values()):,} records for {summary.people:,} people "
        f"to {summary.out} in {summary.seconds:.1f}s"
    )
    for name, count in summary.records.items():
        click.echo(f"  {name:<18} {summary.files.get(name, 0):>3} files {count:>10,} records")
    click.echo(f"ground truth: {summary.truth_file}")
