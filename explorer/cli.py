"""The ``posembed`` command line: click commands only, thin wiring over ``explorer.api``.

Heavy libraries (numpy, torch, transformers, bokeh) are imported inside the commands
that use them, so ``posembed --help`` and ``posembed providers`` start fast.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from explorer import __version__
from explorer.core.choices import PROBE_PROTOCOL, PROBE_PROTOCOLS, SCALES
from explorer.errors import PosembedError, PosembedWarning
from explorer.runtime import console
from explorer.runtime.console import one_line, warnings_as_lines
from explorer.runtime.output import ReaderGone

#: ``posembed`` alone prints its help through this usage error (click >= 8.2); it stays as click shows it.
_HELP_REQUESTED = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _stderr_line(line: str) -> None:
    """One line on stderr (already made safe by ``one_line`` where it quotes anything)."""
    click.echo(line, err=True)


def _usage_error(exc: click.ClickException) -> int:
    """Click's usage error as one line (its usage block and hint folded into it); returns its exit code."""
    ctx = getattr(exc, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if isinstance(exc, click.UsageError) and ctx is not None else ""
    _stderr_line(f"posembed: error: {one_line(exc.format_message()).rstrip('.')}{hint}")
    return exc.exit_code


class PosembedGroup(click.Group):
    """A click group that turns the tool's errors into one line and an exit code (traceback with --debug)."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        """Parse the group's own options; a usage error is one line."""
        try:
            return super().make_context(info_name, args, parent, **extra)
        except _HELP_REQUESTED:
            raise
        except click.ClickException as exc:
            raise click.exceptions.Exit(_usage_error(exc)) from None

    def invoke(self, ctx: click.Context) -> Any:
        with warnings_as_lines(_stderr_line, PosembedWarning):
            try:
                return super().invoke(ctx)
            except _HELP_REQUESTED:
                raise
            except click.ClickException as exc:
                ctx.exit(_usage_error(exc))
            except PosembedError as exc:
                if ctx.params.get("debug"):
                    raise
                if not isinstance(exc, ReaderGone):  # `posembed info gpt2 | head -1`: quiet, as cat is
                    _stderr_line(f"posembed: error: {one_line(exc)}")
                ctx.exit(exc.exit_code)
            except KeyboardInterrupt as exc:  # Ctrl-C, and SIGTERM / SIGHUP through explorer.runtime.interrupts
                from explorer.runtime.interrupts import exit_code, signal_name

                if ctx.params.get("debug"):
                    raise
                name = signal_name(exc)
                why = "interrupted" if name == "SIGINT" else f"interrupted by {name}"
                _stderr_line(f"posembed: error: {why}; nothing was written")
                ctx.exit(exit_code(exc))


@click.group(cls=PosembedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="posembed")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.option("-q", "--quiet", is_flag=True,
              help="No progress or informational lines on stderr (warnings and errors still show).")
@click.pass_context
def cli(ctx: click.Context, debug: bool, quiet: bool) -> None:
    """Explore transformer position embeddings.

    A SPEC names a provider and its parameters: NAME[:TARGET][,key=value...],
    e.g. sinusoidal,positions=2048,dim=512. See `posembed providers`.
    """
    if debug:  # a plugin's failing analysis or section then raises with its traceback instead of a warning
        from explorer.plugins.units import plugin_errors_raise

        ctx.with_resource(plugin_errors_raise())
    if quiet:
        previous = console.set_quiet(True)
        ctx.call_on_close(lambda: console.restore(previous))


def _registry():
    from explorer.plugins.registry import get_registry

    return get_registry()


def _resolution_option(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    """``--resolution``, checked where every resolution is (``explorer.analysis.table.check_resolution``)."""
    if value is None:
        return None
    from explorer.analysis.table import check_resolution
    from explorer.errors import EmbeddingError

    try:
        return check_resolution(value)
    except EmbeddingError as exc:
        raise click.BadParameter(str(exc)) from None


def _spec_values(specs: tuple[str, ...]) -> list[str]:
    """Every target and option value of the specs: the paths among them are the command's inputs."""
    from explorer.errors import SpecError
    from explorer.loading.spec import parse_spec

    values: list[str] = []
    for text in specs:
        try:
            spec = parse_spec(text)
        except SpecError:  # reported when the spec is loaded
            continue
        values += [spec.target or "", *spec.options.values()]
    return values


def _echo_json(data: Any) -> None:
    from explorer.export import json_text

    click.echo(json_text(data, indent=2))  # NaN and Inf as null, in every --json (explorer.export.json_ready)


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
                {"name": q.name, "type": q.type_name, "default": q.default, "required": q.required, "help": q.help}
                for q in p.params
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
            default = ", required" if q["required"] else "" if q["default"] is None else f" = {q['default']}"
            click.echo(f"    {q['name']} ({q['type']}{default})  {q['help']}")
        click.echo(f"    [from {row['plugin']}]")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the plugins as JSON.")
def plugins(as_json: bool) -> None:
    """List plugins: distribution, version, state, hooks.

    Each plugin is shown with the providers, analyses and report sections it registers and its state:
    loaded, clashed (a name it registers is kept by an earlier plugin), skipped (with the reason) or
    excluded by POSEMBED_LOAD_PLUGINS.

    POSEMBED_LOAD_PLUGINS=a,b loads only those installed plugins ('' loads none);
    POSEMBED_TRACE_PLUGINS=1 prints each plugin load and hook call with its duration.
    """
    from explorer.plugins.describe import describe_plugins
    from explorer.plugins.manager import get_plugin_manager
    from explorer.plugins.registry import Registry

    registry = Registry(get_plugin_manager(warn=False))  # each plugin's failures are listed below, not warned too
    rows = describe_plugins(registry.pm, registry)
    if as_json:
        _echo_json(rows)
        return
    for row in rows:
        origin = (" ".join(filter(None, (row["distribution"], row["version"]))) or row["module"]
                  or "unknown distribution")
        click.echo(f"{click.style(row['name'], bold=True)}  {origin}{'  (built-in)' if row['builtin'] else ''}")
        if row["state"] == "excluded":
            click.echo("    excluded by POSEMBED_LOAD_PLUGINS")
            continue
        if row["state"] == "skipped":
            click.echo(f"    skipped: {row['error']}")
        for clash in row["clashes"]:
            click.echo(f"    clashed: {clash['kind']} {clash['name']!r} is kept by plugin {clash['kept']!r}")
        for note in row["notes"]:
            click.echo(f"    note: {note}")
        click.echo(f"    hooks: {', '.join(row['hooks']) or '-'}")
        for kind in ("providers", "analyses", "sections"):  # what each hook it implements registered
            if f"register_{kind}" in row["hooks"] or row[kind]:
                click.echo(f"    {kind}: {', '.join(row[kind]) or '-'}")


@cli.command()
@click.argument("spec")
@click.option("--json", "as_json", is_flag=True, help="Print the information as JSON (NaN and Inf as null).")
def info(spec: str, as_json: bool) -> None:
    """Show a table's shape, provenance and a few summary numbers."""
    from explorer.analysis.summary import summarize
    from explorer.api import load

    embedding = load(spec, registry=_registry())
    summary = summarize(embedding.matrix)
    if embedding.term != "absolute":  # rows are heads: the row norms and neighbour cosines describe no position
        summary = {k: v for k, v in summary.items() if k.startswith("value_")}
    data = {**embedding.provenance(), "summary": summary}
    if as_json:
        _echo_json(data)
        return
    for key, value in data.items():  # names and notes come from files and servers: each line printed as one line
        if key == "summary":
            for name, number in value.items():
                click.echo(f"{name:>22}: {number:.6g}")
        elif key == "params":
            click.echo(one_line(f"{key:>22}: {', '.join(f'{k}={v}' for k, v in value.items()) or '-'}"))
        elif key == "rows" and value is not None:  # one label per row: the ends say what they run over
            click.echo(one_line(f"{key:>22}: {value['name']}, {value['labels'][0]} (row 0) to {value['labels'][-1]}"))
        elif value not in (None, ""):
            click.echo(one_line(f"{key:>22}: {value}"))


_SPECS_OPTION = click.option(
    "--specs", "spec_file", default=None, metavar="FILE",
    help="Also read specs from FILE: one spec (or revision series) a line; blank lines and # comments skipped.")
_KEEP_GOING_OPTION = click.option(
    "--keep-going", is_flag=True,
    help="Leave out a spec that fails to load (named in one line) instead of stopping before writing anything.")
_PROTOCOL_OPTION = click.option(
    "--probe-protocol", type=click.Choice(PROBE_PROTOCOLS), default=PROBE_PROTOCOL, show_default=True,
    help="The probes: ridge (the project's, every row) or wang-chen (Wang & Chen 2020's code: least squares, "
         "512 rows, logistic regression on position pairs); docs/analyses.md.")


_JOBS_OPTION = click.option(
    "--jobs", type=click.IntRange(1, 256), default=1, show_default=True, metavar="N",
    help="Load and analyse the tables in N local worker processes (default: one after the other in this one, "
         "which costs the least CPU).")
_EXECUTOR_OPTION = click.option(
    "--executor", "executor_address", default=None, metavar="ADDRESS",
    help="Load and analyse the tables on a Dask distributed scheduler, e.g. tcp://host:8786 "
         "(pip install 'posembed-explorer[dask]'; the workers need posembed and the plugins the specs use).")


@cli.command()
@click.argument("specs", nargs=-1, metavar="[SPEC]...")
@click.option("-o", "--output", default="report.html", show_default=True,
              help="Where to write the HTML; - for standard output; a folder (DIR/) for a site: an index and a "
                   "page per table.")
@click.option("--title", default=None, help="Title of the page (default: the tables' names).")
@click.option("--resources", type=click.Choice(["inline", "cdn"]), default="inline", show_default=True,
              help="Bokeh's JavaScript inline (works offline) or from the CDN (smaller file).")
@click.option("--resolution", type=int, default=None, callback=_resolution_option,
              help="Display resolution: images are at most this many pixels a side [default: 1024].")
@click.option("--shared-scale", is_flag=True,
              help="One colour scale for every table's matrix (to compare magnitudes); default: each its own.")
@click.option("--scale", type=click.Choice(SCALES), default="auto", show_default=True,
              help="The matrix colour scale: auto is symlog for heavy-tailed tables, else linear.")
@click.option("--vmax", type=click.FloatRange(min=0, min_open=True), default=None,
              help="End of the matrix colour range, e.g. --scale linear --vmax 0.2 [default: from the data].")
@click.option("--open", "open_browser", is_flag=True, help="Open the report in the browser when written.")
@_SPECS_OPTION
@_KEEP_GOING_OPTION
@_PROTOCOL_OPTION
@_JOBS_OPTION
@_EXECUTOR_OPTION
def report(specs: tuple[str, ...], output: str, title: str | None, resources: str, resolution: int | None,
           shared_scale: bool, scale: str, vmax: float | None, open_browser: bool, spec_file: str | None,
           keep_going: bool, probe_protocol: str, jobs: int, executor_address: str | None) -> None:
    """Write a standalone HTML report for one SPEC, or a comparison of several.

    With no SPEC the built-in default (sinusoidal, 1024 x 768) is used; it needs no network.
    Two SPECs stand side by side; three or more make an atlas: every table's numbers in one
    sortable table, CKA and similarity-correlation heatmaps, the offset profiles overlaid,
    thumbnails that wrap with the window, and one table's full sections below (click a
    thumbnail or a row); its default resolution is 384. Each matrix has its own colour scale
    (--shared-scale for one). On a terminal, stderr shows the stage and the elapsed seconds.

    \b
    A revision series is one table per revision, in the order given:
      posembed report 'hf:EleutherAI/pythia-70m,revision=step1000|step2000|step4000'
    Any option may list values with '|' (sinusoidal,base=100|1000|10000), two at once
    (the first outer); a glob is a local training run in step order:
      posembed report 'hf:runs/out/checkpoint-*' -o run/
    An atlas also shows the tables as a series (CKA to the first and last, every scalar
    against the step, a player). -o DIR/ writes a folder site: index.html, a page per
    table, BokehJS once. --specs FILE reads one spec or series a line (blank lines and
    # comments skipped). Tables are loaded and analysed one after the other (--jobs N: in
    N processes; --executor: on a Dask scheduler), remote ones offline from the cache with
    HF_HUB_OFFLINE=1. A run has at most 1000 tables (POSEMBED_MAX_TABLES), and the memory
    it needs is checked before anything is loaded.
    """
    from explorer.api import ATLAS_RESOLUTION, ATLAS_TABLES, DEFAULT_SPEC, requested_document
    from explorer.errors import OutputError
    from explorer.loading.series import requests_of
    from explorer.runtime.environment import give_back_memory
    from explorer.runtime.output import STDOUT, check_folder, check_writable, is_folder_output

    requests = requests_of(specs or (() if spec_file else (DEFAULT_SPEC,)), spec_file)  # bad lines fail first
    inputs = [spec_file, *_spec_values(tuple(r.spec for r in requests))]
    if is_folder_output(output):
        if len(requests) < ATLAS_TABLES:
            raise OutputError(f"a folder site (-o {output}) needs at least {ATLAS_TABLES} tables, got "
                              f"{len(requests)}; write one file instead (-o report.html)")
        check_folder(output, inputs)  # fail before any expensive work
    else:
        check_writable(output, inputs)  # before any expensive work
    if output == STDOUT and open_browser:
        console.warn("--open needs a file; ignored with -o -")
    if resolution is None:  # an atlas's default resolution, chosen by the number of tables asked for
        from explorer.analysis import RESOLUTION

        resolution = ATLAS_RESOLUTION if len(requests) >= ATLAS_TABLES else RESOLUTION
    registry = _registry()
    if is_folder_output(output):
        _report_site(requests, output, registry, title=title, resources=resources, resolution=resolution,
                     shared_scale=shared_scale, scale=scale, vmax=vmax, open_browser=open_browser,
                     keep_going=keep_going, probe_protocol=probe_protocol, jobs=jobs, executor=executor_address)
        return
    with console.stage("starting"):  # one status line, its clock running from here to the write
        page, read_from = requested_document(requests, registry, resolution=resolution, jobs=jobs, title=title,
                                             probe_protocol=probe_protocol, keep_going=keep_going, vmax=vmax,
                                             executor=executor_address, shared_scale=shared_scale, scale=scale)
        give_back_memory()  # the results are gone (docs/performance.md): their memory too, before the HTML's copies
        from explorer.reporting.page import write

        console.step("writing the page")
        html = write(page, output, resources, read_from)
    if output != STDOUT:
        console.info(f"wrote {output} ({len(html.encode('utf-8')) / 1e6:.1f} MB)")
        if open_browser:
            import pathlib
            import webbrowser

            if not webbrowser.open(pathlib.Path(output).resolve().as_uri()):
                console.warn(f"--open found no browser on this machine; open {output} yourself")


def _report_site(requests, output: str, registry: Any, *, open_browser: bool, keep_going: bool, resolution: int,
                 probe_protocol: str, jobs: int, executor: str | None, **options: Any) -> None:
    """``report -o DIR/``: the folder site of the requested tables (``explorer.api.site``), loaded and analysed as
    the single file's are (``analyze_requests``: the same executor, limits and warnings)."""
    from explorer.api import analyze_requests, site

    with console.stage("starting"):
        embeddings, _, results, pairs = analyze_requests(requests, registry, resolution=resolution, jobs=jobs,
                                                         probe_protocol=probe_protocol, keep_going=keep_going,
                                                         executor=executor)
        sizes = site(embeddings, output, registry=registry, resolution=resolution, probe_protocol=probe_protocol,
                     analysed=(results, pairs), **options)
    index = os.path.join(output, "index.html")
    console.info(f"wrote {index} ({sizes['index.html'] / 1e6:.1f} MB) and {len(sizes) - 1} more files "
                 f"({(sum(sizes.values()) - sizes['index.html']) / 1e6:.1f} MB)")
    if open_browser:
        import pathlib
        import webbrowser

        webbrowser.open(pathlib.Path(index).resolve().as_uri())


def _size(embedding: Any) -> str:
    """``1024 x 768`` for a table, ``12 heads x 255 distances`` for a relative term."""
    if embedding.term == "relative":
        return f"{embedding.heads} heads x {embedding.dim} distances"
    if embedding.term == "window":
        return f"{embedding.heads} heads x {embedding.dim} offsets"
    if embedding.term == "conv":
        return f"{embedding.groups} groups x {embedding.group_channels} x {embedding.group_channels} channels x " \
               f"{embedding.taps} taps"
    return f"{embedding.positions} x {embedding.dim}"


@cli.command()
@click.argument("specs", nargs=-1, metavar="SPEC...")
@click.option("--json", "as_json", is_flag=True, help="Print every scalar result as JSON (NaN and Inf as null).")
@click.option("--npz", "npz", default=None, metavar="FILE",
              help="Also save every result array to FILE (.npz, keys like 0.offset.mean, and 0-1.comparison.lag for pairs).")
@click.option("--resolution", type=int, default=None, callback=_resolution_option,
              help="Display resolution of images and profiles [default: 1024].")
@_SPECS_OPTION
@_KEEP_GOING_OPTION
@_PROTOCOL_OPTION
@_JOBS_OPTION
@_EXECUTOR_OPTION
def analyze(specs: tuple[str, ...], as_json: bool, npz: str | None, resolution: int | None, spec_file: str | None,
            keep_going: bool, probe_protocol: str, jobs: int, executor_address: str | None) -> None:
    """Run the shared analyses on each SPEC and print their scalar results.

    With several SPECs each pair is also compared (linear CKA, similarity correlation) on the
    positions they have in common. A series ('hf:ORG/NAME,revision=a|b', a glob such as
    'hf:runs/out/checkpoint-*'), --specs FILE, --jobs and --executor work as for report.
    Formulas: docs/analyses.md.
    """
    from explorer.analysis import RESOLUTION
    from explorer.api import analyze_requests
    from explorer.export import analysis_json, analysis_npz
    from explorer.loading.series import requests_of
    from explorer.runtime.output import STDOUT, check_writable, write_atomic

    if npz == STDOUT and as_json:
        raise click.UsageError("--npz - and --json both want standard output; write the .npz to a file")
    if not specs and not spec_file:
        raise click.UsageError("Missing argument 'SPEC...' (or --specs FILE)")
    requests = requests_of(specs, spec_file)
    if npz is not None:
        check_writable(npz, [spec_file, *_spec_values(tuple(r.spec for r in requests))])  # before expensive work
    registry = _registry()
    with console.stage("starting"):
        embeddings, specs, results, pairs = analyze_requests(
            requests, registry, resolution=resolution or RESOLUTION, probe_protocol=probe_protocol,
            keep_going=keep_going, jobs=jobs, executor=executor_address)
    data = analysis_json(specs, embeddings, results, pairs)
    if npz is not None:
        write_atomic(npz, analysis_npz(results, pairs), [spec_file, *_spec_values(specs)])
        if npz == STDOUT:  # standard output carries the binary .npz alone
            return
    if as_json:
        _echo_json(data)
        return
    for table in data["tables"]:
        what = {"relative": "heads x distances", "window": "heads x offsets",
                "conv": "groups x kernel weights"}.get(table["term"], "positions x dimensions")
        click.echo(click.style(f"{table['spec']}  ({table['shape'][0]} x {table['shape'][1]} {what})", bold=True))
        for name, number in table["scalars"].items():
            click.echo(f"{name:>28}: {'n/a' if number is None else f'{number:.6g}'}")
    for pair in data["comparisons"]:
        click.echo(click.style(f"{pair['a']}  vs  {pair['b']}", bold=True))
        for name, number in pair["scalars"].items():
            click.echo(f"{name:>28}: {'n/a' if number is None else f'{number:.6g}'}")
    if npz is not None and npz != STDOUT:
        console.info(f"wrote {npz}")


@cli.command()
@click.argument("spec")
@click.option("-o", "--output", required=True,
              help="File to write: .npy, .safetensors or .csv; - for standard output (with --format).")
@click.option("--format", "fmt", type=click.Choice(["npy", "safetensors", "csv"]), default=None,
              help="Output format [default: from the file's suffix].")
def export(spec: str, output: str, fmt: str | None) -> None:
    """Write a SPEC's table to a file for other tools.

    .safetensors files carry the table's provenance in their metadata (file: reads them back as exported: a
    relative term, row labels, a grid); .csv has one row per position.
    """
    from explorer.api import load
    from explorer.export import export as write_table
    from explorer.export import format_for
    from explorer.runtime.output import STDOUT, check_writable

    fmt = format_for(output, fmt)  # fail before any expensive work
    check_writable(output, _spec_values((spec,)))
    embedding = load(spec, registry=_registry())
    write_table(embedding, output, fmt)
    if output != STDOUT:
        console.info(f"wrote {output} ({_size(embedding)} {fmt})")


def main() -> None:
    """Entry point of the ``posembed`` console script."""
    from explorer.runtime import interrupts
    from explorer.runtime.console import library_lines_off
    from explorer.runtime.environment import command_process
    from explorer.runtime.output import guard_standard_streams, release_stdout

    interrupts.install()  # first: SIGTERM and SIGHUP clean up like Ctrl-C from here on
    guard_standard_streams()
    library_lines_off()
    with command_process():  # one BLAS thread, the garbage collector tuned: measured reasons in environment.py
        try:
            cli(prog_name="posembed")
        finally:
            release_stdout()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
