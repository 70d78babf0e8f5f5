"""Regenerate the report screenshots in docs/images/ from real reports, rendered by headless Chromium.

    python docs/make_screenshots.py [--gpt2 PATH/TO/gpt2-small-wpe.npy]

Writes the real GPT-2 report and GPT-2 against the sinusoid (each an HTML file in a temporary folder, built
by the same API as ``posembed report``), opens each in headless Chromium, checks that it rendered with no
console error, and saves:

- ``gpt2-report.png``: the top of the GPT-2 report at 1280 px (provenance, matrix, dimension traces);
- ``gpt2-report-analyses.png``: its similarity, offset, PCA and spectrum sections;
- ``gpt2-vs-sinusoid.png``: the top of the comparison page at 1920 px (pairwise numbers, overlaid offset
  profiles, both matrices, each on its own colour scale);
- ``three-tables.png``: GPT-2, the sinusoid and its split layout at 1280 px: the top of their atlas;
- ``atlas.png``: the gallery's atlas at 1920 px, six tables that can be made here: the sinusoid at bases 100,
  1000 and 10000 (1024 x 768) and at widths 256 and 64 (base 10000), and GPT-2 small's real table.
- ``dynamics.png``: the dynamics view of a real training series at 1280 px: a tiny GPT-2 (64 positions, 32
  dimensions) trained here on CPU, two seeds, its checkpoints saved as transformers' Trainer names them
  (``run/seed-1/checkpoint-0`` ... ``checkpoint-600``) and read back by the glob ``hf:run/seed-*/checkpoint-*``
  (``--dynamics-only`` makes just this one);
- ``grid-sinusoid2d.png``: the grid sections of MAE's 2-D sin-cos table on ViT-B/16's 14 x 14 grid (768
  dimensions) at 1280 px: no vision checkpoint can be downloaded here, so the formula stands in
  (``--grid-only`` makes just this one, without GPT-2).

Each page is also checked for horizontal scrolling (every page at 1280 and 1920 px); ``--all WIDTHS`` saves
whole-page
screenshots of every page at those widths into ``--out`` for a look (not committed).

GPT-2's table is read through the ``file`` provider when it is registered, else built directly.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
DEFAULT_GPT2 = DOCS.parent.parent / "shared" / "data" / "gpt2-small-wpe.npy"
#: The headless-browser driver is a test tool, kept in tests/browser.py.
TESTS = DOCS.parent / "tests"


def load_gpt2(path: Path):
    """GPT-2's learned table, through the ``file`` provider if it exists."""
    import explorer
    from explorer.plugins.registry import get_registry

    registry = get_registry()
    if "file" in [p.name for p in registry]:
        return explorer.load(f"file:{path},kind=learned", registry=registry)
    import numpy as np

    from explorer.core.embedding import PositionEmbedding

    return PositionEmbedding(np.load(path), provider="gpt2", source="openai-community/gpt2", kind="learned")


def save_png(png: bytes, path: Path) -> None:
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    # a 256-colour palette keeps the images a third of the size; the heatmaps barely band
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
    shown = path.relative_to(DOCS.parent) if path.is_relative_to(DOCS.parent) else path
    print(f"wrote {shown} ({path.stat().st_size / 1e3:.0f} kB)")


def section_top(browser, name: str) -> int:
    """The page y (CSS pixels) of the first model called ``name``'s element, a little above it."""
    return int(browser.evaluate(f"""(() => {{
      const model = [...Bokeh.documents[0].all_models].find((m) => m.name === {name!r});
      const view = model && Bokeh.index.find_one(model);
      return view ? view.el.getBoundingClientRect().top + window.scrollY - 60 : 0;
    }})()"""))


def rendered_cleanly(browser, page: Path, what: str, idle_timeout: float = 20.0) -> bool:
    """Open ``page``; False (and a line on stderr) when it logged errors or Bokeh never went idle."""
    result = browser.open(page, idle_timeout=idle_timeout)
    if result.errors or not result.idle:
        print(f"{what} did not render cleanly: {result.errors}", file=sys.stderr)
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpt2", type=Path, default=DEFAULT_GPT2, help="GPT-2 small's wpe table (.npy)")
    parser.add_argument("--out", type=Path, default=DOCS / "images")
    parser.add_argument("--all", action="store_true", help="also save whole pages at 1280 and 1920 px")
    parser.add_argument("--grid-only", action="store_true", help="only the grid page (needs no GPT-2 table)")
    parser.add_argument("--dynamics-only", action="store_true", help="only the dynamics page (needs no GPT-2 table)")
    args = parser.parse_args()
    if args.grid_only:
        return grid_page(args.out)
    if args.dynamics_only:
        return dynamics_page(args.out)
    if not args.gpt2.exists():
        print(f"GPT-2 table not found at {args.gpt2}; pass --gpt2", file=sys.stderr)
        return 1

    import explorer
    sys.path.insert(0, str(TESTS))
    from browser import Chromium

    args.out.mkdir(parents=True, exist_ok=True)
    gpt2 = load_gpt2(args.gpt2)
    sinusoid = explorer.load("sinusoidal")
    with tempfile.TemporaryDirectory(prefix="posembed-shots-") as tmp:
        single, pair = Path(tmp) / "gpt2.html", Path(tmp) / "gpt2-vs-sinusoid.html"
        three, atlas = Path(tmp) / "three.html", Path(tmp) / "atlas.html"
        explorer.report(gpt2, single, title="GPT-2 small: learned position embeddings")
        explorer.report([gpt2, sinusoid], pair, title="GPT-2 small against the sinusoid")
        explorer.report([gpt2, sinusoid, explorer.load("sinusoidal,layout=split")], three,
                        title="GPT-2 small, the sinusoid, and the sinusoid with sines and cosines apart")
        gallery = [explorer.load(f"sinusoidal,base={base}") for base in (100, 1000, 10000)]
        gallery += [explorer.load(f"sinusoidal,dim={dim}") for dim in (256, 64)] + [gpt2]
        explorer.report(gallery, atlas, title="An atlas: the sinusoid at three bases and three widths, and GPT-2 small")
        with Chromium(width=1280, height=1500) as browser:
            for page, what in ((single, "GPT-2 report"), (pair, "comparison"), (three, "three tables"),
                               (atlas, "atlas")):
                for width in (1280, 1920):
                    browser.resize(width, 1500)
                    if not rendered_cleanly(browser, page, what):
                        return 1
                    if not fits(browser, what, width):
                        return 1
                    if args.all:
                        save_png(browser.screenshot(full_page=True), args.out / f"all-{page.stem}-{width}.png")
            browser.resize(1280, 1500)
            rendered_cleanly(browser, single, "GPT-2 report")
            save_png(browser.screenshot(clip={"x": 0, "y": 0, "width": 1280, "height": 1640}),
                     args.out / "gpt2-report.png")
            top = section_top(browser, "cosine_positions")
            bottom = browser.evaluate("document.documentElement.scrollHeight")
            save_png(browser.screenshot(clip={"x": 0, "y": top, "width": 1280, "height": min(2900, bottom - top)}),
                     args.out / "gpt2-report-analyses.png")
            browser.resize(1920, 1400)
            rendered_cleanly(browser, pair, "comparison")
            save_png(browser.screenshot(clip={"x": 0, "y": 0, "width": 1920, "height": 1720}),
                     args.out / "gpt2-vs-sinusoid.png")
            browser.resize(1280, 1500)
            rendered_cleanly(browser, three, "three tables")
            save_png(browser.screenshot(clip={"x": 0, "y": 0, "width": 1280, "height": 1900}),
                     args.out / "three-tables.png")
            browser.resize(1920, 1400)
            rendered_cleanly(browser, atlas, "atlas")
            save_png(browser.screenshot(clip={"x": 0, "y": 0, "width": 1920, "height": 2000}),
                     args.out / "atlas.png")
    return 0


def grid_page(out: Path) -> int:
    """``grid-sinusoid2d.png``: the patch-similarity, 2-D offset and grid PCA sections of the 2-D sinusoid."""
    import explorer
    sys.path.insert(0, str(TESTS))
    from browser import Chromium

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="posembed-shots-") as tmp, Chromium(width=1280, height=1500) as browser:
        page = Path(tmp) / "grid.html"
        explorer.report(explorer.load("sinusoidal2d,grid=14x14,dim=768"), page,
                        title="MAE's 2-D sin-cos table on a 14 x 14 grid")
        if not rendered_cleanly(browser, page, "grid page") or not fits(browser, "grid page", 1280):
            return 1
        top = section_top(browser, "patch_tiles") - 30
        save_png(browser.screenshot(clip={"x": 0, "y": top, "width": 1280, "height": 720}), out / "grid-sinusoid2d.png")
    return 0


STEPS, EVERY, PERIOD = 600, 75, 8


def train_run(folder: Path, seed: int) -> None:
    """A tiny GPT-2 learning to continue sequences that repeat every ``PERIOD`` tokens (it must find the token
    ``PERIOD`` positions back, so its position table has something to learn), saved every ``EVERY`` steps as
    transformers' Trainer names its checkpoints."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.set_num_threads(1)  # a tiny model: more threads only wait for each other
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(n_positions=64, n_embd=32, n_layer=2, n_head=4, vocab_size=64,
                                       bos_token_id=0, eos_token_id=0, loss_type="ForCausalLM"))
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(STEPS + 1):
        if step % EVERY == 0:
            model.save_pretrained(folder / f"checkpoint-{step}")
        pattern = torch.randint(0, 64, (32, PERIOD))
        batch = pattern.repeat(1, 64 // PERIOD)
        loss = model(batch, labels=batch).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()


def dynamics_page(out: Path) -> int:
    """``dynamics.png``: the dynamics view of two seeds' training runs, read by a glob."""
    import explorer
    from explorer.loading.series import expand_series
    sys.path.insert(0, str(TESTS))
    from browser import Chromium

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="posembed-shots-") as tmp, \
            Chromium(width=1280, height=1500, timeout=180) as browser:
        for seed in (1, 2):
            train_run(Path(tmp) / "run" / f"seed-{seed}", seed)
        page = Path(tmp) / "dynamics.html"
        specs = expand_series(f"hf:{tmp}/run/seed-*/checkpoint-*")
        explorer.report([explorer.load(spec) for spec in specs], page,
                        title=f"A tiny GPT-2 in training: two seeds, a checkpoint every {EVERY} steps")
        for width in (1920, 1280):
            browser.resize(width, 1500)
            if not rendered_cleanly(browser, page, "dynamics page", 120) or not fits(browser, "dynamics page", width):
                return 1
        browser.evaluate("Bokeh.documents[0].get_model_by_name('dynamics_slider').value = 5")
        top = section_top(browser, "dynamics") + 24  # from the section's heading to the player's caption
        save_png(browser.screenshot(clip={"x": 0, "y": top, "width": 1280, "height": 1406}), out / "dynamics.png")
    return 0


def fits(browser, what: str, width: int) -> bool:
    """False (and a line on stderr) when the page is wider than the window: a horizontal scroll bar."""
    page = browser.evaluate("document.documentElement.scrollWidth")
    if page > width:
        print(f"{what} is {page} px wide in a {width} px window", file=sys.stderr)
    return page <= width


if __name__ == "__main__":
    sys.exit(main())
