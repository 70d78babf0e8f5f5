"""posembed-random-walk: a position table that is a Gaussian random walk.

Each row adds one step drawn from N(0, step^2 / dim) in every dimension to the row before it, so
neighbouring positions are alike and distant ones are not, and nothing else is built in. Its
principal components are nevertheless close to cosines (Antognini & Sohl-Dickstein, 2018): compare a
learned table against this one before reading meaning into sinusoid-like components.
"""

from __future__ import annotations

from explorer import Param, Provider, check_shape, hookimpl


def random_walk(positions: int, dim: int, seed: int = 0, step: float = 1.0):
    """The ``positions x dim`` float32 walk: row p is the sum of p + 1 steps of expected squared length step^2."""
    import numpy as np  # imported here, not at the top, so `posembed --help` stays fast

    check_shape((positions, dim), "random-walk", itemsize=8)  # refuse before drawing: the steps are float64
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, step / np.sqrt(dim), size=(positions, dim))
    return np.cumsum(steps, axis=0).astype(np.float32)


def load(positions: int, dim: int, seed: int, step: float):
    """The ``random-walk`` provider's ``load``: called with every parameter, typed and defaulted."""
    from explorer import PositionEmbedding

    return PositionEmbedding(
        random_walk(positions, dim, seed, step),
        provider="random-walk",
        source=f"seed {seed}, step {step:g}",
        kind="formula",
        params={"positions": positions, "dim": dim, "seed": seed, "step": step},
        description="Gaussian random walk over positions: smooth, with no structure put in by hand",
    )


PROVIDER = Provider(
    name="random-walk",
    description="A Gaussian random walk over positions: the null model for a smooth learned table",
    load=load,
    params=(
        Param("positions", int, 1024, "number of positions (rows)", minimum=2),
        Param("dim", int, 768, "embedding width (columns)", minimum=1),
        Param("seed", int, 0, "random seed (0 or more): the same seed gives the same table", minimum=0),
        Param("step", float, 1.0, "expected length of one step between neighbouring positions", minimum=0),
    ),
)


@hookimpl
def register_providers(register):
    """Tell posembed about the provider."""
    register(PROVIDER)
