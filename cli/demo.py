"""``usvid demo``: run the whole pipeline on a small synthetic scan set."""

from __future__ import annotations

from pathlib import Path

import typer

from usvid.cli.common import handle_errors


@handle_errors
def demo(out: Path = typer.Option(Path("demo_out"), "--out", help="Folder for everything the demo writes.")) -> None:
    """Generate synthetic scans, extract them, train a small LA-Net and write an overlay video."""
    from usvid.demo import run_demo

    run_demo(out)
