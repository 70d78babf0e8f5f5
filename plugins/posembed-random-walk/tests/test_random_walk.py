import numpy as np

import explorer
from posembed_random_walk import random_walk


def test_the_same_seed_gives_the_same_table():
    np.testing.assert_array_equal(random_walk(64, 8, seed=1), random_walk(64, 8, seed=1))
    assert not np.array_equal(random_walk(64, 8, seed=1), random_walk(64, 8, seed=2))


def test_neighbouring_positions_are_one_step_of_the_chosen_length_apart():
    walk = random_walk(2000, 256, step=0.5)
    steps = np.linalg.norm(np.diff(walk, axis=0), axis=1)
    assert abs(steps.mean() - 0.5) < 0.01


def test_posembed_finds_the_provider_through_its_entry_point():
    table = explorer.load("random-walk,positions=32,dim=4,seed=7")
    assert table.shape == (32, 4)
    assert table.params["seed"] == 7


def test_its_first_principal_component_is_a_half_cosine():
    """Why this provider exists: smoothness alone makes sinusoid-like principal components."""
    walk = random_walk(256, 128)
    centred = walk - walk.mean(axis=0)
    pc1 = np.linalg.svd(centred, full_matrices=False)[0][:, 0]
    half_cosine = np.cos(np.pi * (np.arange(256) + 0.5) / 256)
    assert abs(np.corrcoef(pc1, half_cosine)[0, 1]) > 0.95
