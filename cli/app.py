"""The ``usvid`` Typer application. Each command lives in its own module and is registered here."""

from __future__ import annotations

import typer

from usvid import __version__

app = typer.Typer(
    name="usvid",
    help="Breast-ultrasound scan videos: synth, extract, train, eval, export, predict, stream.",
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
    # Imported here so `usvid --help` stays fast and each command's heavy imports stay inside it.
    from usvid.cli import demo

    app.command("demo")(demo.demo)
    from usvid.cli import synth; app.command("synth")(synth.synth)
    from usvid.cli import stream; app.command("stream")(stream.stream)
    from usvid.cli import models; app.command("models")(models.models)
    from usvid.cli import export; app.command("export")(export.export)
    from usvid.cli import predict; app.command("predict")(predict.predict)
    from usvid.cli import train; app.command("train")(train.train)
    from usvid.cli import eval as eval_cli; app.command("eval")(eval_cli.eval_command)
    from usvid.cli import extract; app.command("extract")(extract.extract)


_register()


def main() -> None:
    app()
