"""The ``posembed`` command line: click commands only, thin wiring over ``explorer.api``.

Heavy libraries (numpy, torch, transformers, bokeh) are imported inside the commands
that use them, so ``posembed --help`` and ``posembed providers`` start fast.
"""

from __future__ import annotations

import json
import sys
import warnings
from typing import Any

import click

from explorer import __version__
from explorer.errors import PosembedError, PosembedWarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    if issubclass(category, PosembedWarning):
        click.echo(f"posembed: warning: {message}", err=True)
    else:
        click.echo(warnings.formatwarning(message, category, filename, lineno, line).rstrip(), err=True)


class PosembedGroup(click.Group):
    """A click group that turns the tool's errors into one line and an exit code (traceback with --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("always", PosembedWarning)
            warnings.showwarning = _show_warning
            try:
                return super().invoke(ctx)
            except PosembedError as exc:
                if ctx.params.get("debug"):
                    raise
                click.echo(f"posembed: error: {exc}", err=True)
                ctx.exit(exc.exit_code)
            except KeyboardInterrupt:
                if ctx.params.get("debug"):
                    raise
                click.echo("posembed: interrupted; nothing was written", err=True)
                ctx.exit(130)


@click.group(cls=PosembedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="posembed")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
def cli(debug: bool) -> None:
    """Explore transformer position embeddings.

    A SPEC names a provider and its parameters: NAME[:TARGET][,key=value...],
    e.g. sinusoidal,positions=2048,dim=512. See `posembed providers`.
    """


def _registry():
    from explorer.plugins import get_registry

    return get_registry()


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, allow_nan=False, default=str))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the providers as JSON.")
def providers(as_json: bool) -> None:
    """List the available providers and their parameters."""
    registry = _registry()
    rows = [
        {
            "name": p.name,
            "description": p.description,
            "plugin": registry.owners[p.name],
            "target": p.target,
            "params": [
                {"name": q.name, "type": q.type_name, "default": q.default, "help": q.help} for q in p.params
            ],
        }
        for p in registry
    ]
    if as_json:
        _echo_json(rows)
        return
    for row in rows:
        head = row["name"] + (f":<{row['target']}>" if row["target"] else "")
        click.echo(f"{click.style(head, bold=True)}  {row['description']}")
        for q in row["params"]:
            default = "" if q["default"] is None else f" = {q['default']}"
            click.echo(f"    {q['name']} ({q['type']}{default})  {q['help']}")
        click.echo(f"    [from {row['plugin']}]")


@cli.command()
@click.argument("spec")
@click.option("--json", "as_json", is_flag=True, help="Print the information as JSON.")
def info(spec: str, as_json: bool) -> None:
    """Show a table's shape, provenance and a few summary numbers."""
    from explorer.analysis.summary import summarize
    from explorer.api import load

    embedding = load(spec, registry=_registry())
    data = {**embedding.provenance(), "summary": summarize(embedding.matrix)}
    if as_json:
        _echo_json(data)
        return
    for key, value in data.items():
        if key == "summary":
            for name, number in value.items():
                click.echo(f"{name:>22}: {number:.6g}")
        elif key == "params":
            click.echo(f"{key:>22}: {', '.join(f'{k}={v}' for k, v in value.items()) or '-'}")
        elif value not in (None, ""):
            click.echo(f"{key:>22}: {value}")


@cli.command()
@click.argument("specs", nargs=-1, metavar="[SPEC]...")
@click.option("-o", "--output", default="report.html", show_default=True,
              help="Where to write the HTML; - for standard output.")
@click.option("--title", default=None, help="Title of the page (default: the tables' names).")
@click.option("--resources", type=click.Choice(["inline", "cdn"]), default="inline", show_default=True,
              help="Bokeh's JavaScript inline (works offline) or from the CDN (smaller file).")
@click.option("--resolution", type=click.IntRange(min=2), default=None,
              help="Display resolution: images are at most this many pixels a side [default: 1024].")
@click.option("--open", "open_browser", is_flag=True, help="Open the report in the browser when written.")
def report(specs: tuple[str, ...], output: str, title: str | None, resources: str, resolution: int | None,
           open_browser: bool) -> None:
    """Write a standalone HTML report for one SPEC, or a comparison of several.

    With no SPEC the built-in default (sinusoidal, 1024 x 768) is used; it needs no network.
    """
    from explorer.api import DEFAULT_SPEC, load
    from explorer.api import report as build_report
    from explorer.output import STDOUT, check_writable

    if output != STDOUT:
        check_writable(output)  # fail before any expensive work
    registry = _registry()
    embeddings = [load(s, registry=registry) for s in (specs or (DEFAULT_SPEC,))]
    html = build_report(embeddings, output, title=title, resources=resources, resolution=resolution)
    if output != STDOUT:
        click.echo(f"wrote {output} ({len(html.encode('utf-8')) / 1e6:.1f} MB)", err=True)
        if open_browser:
            import pathlib
            import webbrowser

            webbrowser.open(pathlib.Path(output).resolve().as_uri())


def main() -> None:
    """Entry point of the ``posembed`` console script."""
    cli(prog_name="posembed")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
