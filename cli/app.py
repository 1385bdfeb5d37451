"""The ``usvid`` Typer application. Each command lives in its own module and is registered here."""

from __future__ import annotations

import typer

from usvid import __version__
from usvid.cli.common import UsvidCommand, UsvidGroup

app = typer.Typer(
    name="usvid",
    cls=UsvidGroup,
    help="Breast-ultrasound scan videos: synth, extract, train, eval, export, predict, stream (in that order).",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"usvid {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """usvid: extract recorded scans, train LA-Net, export it and stream it over live video."""


def _register() -> None:
    # Imported here so `usvid --help` stays fast and each command's heavy imports stay inside it. Registered in
    # pipeline order, the order `usvid --help` lists them in.
    from usvid.cli import calibrate, demo, export, extract, models, predict, repeat, stream, synth, train
    from usvid.cli import eval as eval_cli

    for name, fn in (("synth", synth.synth), ("extract", extract.extract), ("train", train.train),
                     ("eval", eval_cli.eval_command), ("calibrate", calibrate.calibrate),
                     ("repeat", repeat.repeat), ("export", export.export),
                     ("predict", predict.predict),
                     ("stream", stream.stream), ("models", models.models), ("demo", demo.demo)):
        app.command(name, cls=UsvidCommand)(fn)


_register()


def main() -> None:
    app()
