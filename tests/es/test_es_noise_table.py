"""noise="table": candidates are windows of a shared table, any subset of them costs only its rows."""

from __future__ import annotations

import pytest
import torch

import scoregrad as sg
from scoregrad.es.noise import NoiseTable, noise_table
from tests.es.test_es_gradient import draws_of_mean_gradient, quadratic
from tests.es.test_es_strategies import BUDGETS, D, ellipsoid, sphere
from tests.helpers import Z, assert_unbiased


def test_the_table_is_standard_normal_reproducible_and_shared():
    table = NoiseTable(1 << 16, seed=3)
    values = table.table.double()
    n = values.numel()
    assert abs(float(values.mean())) < Z / n**0.5  # mean 0, standard error 1/sqrt(n)
    assert abs(float(values.var()) - 1) < Z * 2**0.5 / n**0.5  # variance 1, standard error sqrt(2/n)
    assert torch.equal(NoiseTable(1 << 16, seed=3).table, table.table)
    assert not torch.equal(NoiseTable(1 << 16, seed=4).table, table.table)
    assert noise_table(1 << 16, 3) is noise_table(1 << 16, 3)  # built once per process
    offsets = table.offsets(generation_seed := 12345, 6, 100)
    assert torch.equal(offsets, table.offsets(generation_seed, 6, 100))
    assert int(offsets.min()) >= 0 and int(offsets.max()) <= table.size - 100
    windows = table.windows(offsets, 100, dtype=torch.float64)
    for row, offset in enumerate(offsets.tolist()):
        assert torch.equal(windows[row], table.table[offset : offset + 100].double())


STRATEGIES = [
    (sg.es.OpenES, {}),
    (sg.es.SNES, {}),  # two-point step size: rows 0 and 1 follow the last mean shift
    (sg.es.SNES, {"antithetic": True}),  # ... rows 0 and P/2
    (sg.es.PGPE, {}),
    (sg.es.XNES, {}),
]


@pytest.mark.parametrize("noise", ["generator", "table"])
@pytest.mark.parametrize(("cls", "kwargs"), STRATEGIES, ids=lambda v: getattr(v, "name", str(v)))
def test_asking_for_some_rows_gives_those_rows_of_the_population(cls, kwargs, noise):
    es = cls(
        torch.linspace(-1, 1, 9, dtype=torch.float64), sigma=0.3, popsize=8, seed=5, noise=noise, **kwargs
    )
    for _ in range(4):  # from the third generation on, SNES's line pair is in play
        parts = [es.ask(rows=slice(0, 3)), es.ask(rows=slice(3, 5)), es.ask(rows=slice(5, 8))]
        X = es.ask()
        assert torch.equal(torch.cat(parts), X)  # bit for bit, so processes agree with one process
        for i in (0, 1, 4, 7):
            assert torch.equal(es.candidate_noise(i), es.candidate_noise(i, generation=es.generation))
        es.tell(sphere(X))
        es.optimizer.step()


def test_a_past_generations_candidate_is_rebuilt_from_its_seed():
    es = sg.es.OpenES(torch.zeros(7, dtype=torch.float64), sigma=0.2, popsize=6, seed=11, noise="table")
    recorded = {}
    for generation in range(3):
        X = es.ask()
        for i in range(6):
            torch.testing.assert_close(X[i], es.mean.detach() + 0.2 * es.candidate_noise(i), rtol=0, atol=0)
        recorded[generation] = [es.candidate_noise(i) for i in range(6)]
        es.tell(sphere(X))
        es.optimizer.step()
    for generation, noises in recorded.items():
        for i, z in enumerate(noises):
            assert torch.equal(es.candidate_noise(i, generation=generation), z)
    assert torch.equal(recorded[1][0], -recorded[1][3])  # mirrored pairs


def test_table_noise_gives_an_unbiased_gradient_for_a_quadratic():
    f, A, b, m = quadratic()
    for antithetic in (True, False):
        es = sg.es.OpenES(m, sigma=0.7, popsize=6, antithetic=antithetic, shaping=None, seed=1, noise="table")
        draws = draws_of_mean_gradient(es, f, 3000)
        assert_unbiased(draws, 2 * A @ m + b, what=f"OpenES noise='table' antithetic={antithetic}")


@pytest.mark.parametrize("function", ["sphere", "ellipsoid"])
def test_snes_with_table_noise_reaches_1e_8_within_the_generator_budget(function):
    f = {"sphere": sphere, "ellipsoid": ellipsoid}[function]
    res = sg.es.minimize(
        f, torch.ones(D, dtype=torch.float64), method="snes", sigma0=0.5,
        budget=BUDGETS["snes", function], seed=0, target=1e-8, noise="table",
    )  # fmt: skip
    assert res.reached_target and res.fun < 1e-8, (function, res.fun, res.evaluations)


def test_bad_noise_arguments_are_named():
    with pytest.raises(ValueError, match="noise must be 'generator', 'table' or a NoiseTable"):
        sg.es.OpenES(torch.zeros(3), noise="tables")
    with pytest.raises(ValueError, match="noise: the table holds 4 numbers, fewer than the 5 parameters"):
        sg.es.SNES(torch.zeros(5), noise=NoiseTable(4))
    with pytest.raises(TypeError, match="rows must be a slice of consecutive candidates"):
        sg.es.OpenES(torch.zeros(3)).ask(rows=[0, 1])
    with pytest.raises(ValueError, match="size must be an int >= 2"):
        NoiseTable(1.5)


@pytest.mark.parametrize("cls", [sg.es.OpenES, sg.es.SNES, sg.es.PGPE])
def test_gradient_stats_agree_with_the_gradient_under_table_noise(cls):
    """OpenES's mirrored update uses only the first half's noise; the diagnostics rebuild both."""
    es = cls(torch.linspace(-1, 1, 12, dtype=torch.float64), sigma=0.4, popsize=10, antithetic=True, seed=1,
             noise="table")  # fmt: skip
    for _ in range(3):
        X = es.ask()
        es.tell(sphere(X))
        grad = es.mean.grad.clone()
        torch.testing.assert_close(es.gradient_stats().mean, grad)
        es.optimizer.step()


def test_weighted_sum_of_windows_equals_the_sum_of_the_copied_windows():
    table = NoiseTable(1 << 16, seed=2)
    offsets = table.offsets(99, 40, 300)
    for dtype in (torch.float32, torch.float64):  # embedding_bag for float32, a copy for float64
        weights = torch.linspace(-1, 1, 40, dtype=dtype)
        expected = (weights[:, None] * table.windows(offsets, 300, dtype=torch.float64)).sum(0)
        torch.testing.assert_close(
            table.weighted_sum(offsets, weights, 300).double(), expected, rtol=1e-5, atol=1e-5
        )
    mixed = torch.tensor([0, 1, 7])  # offsets of different phases: the copying path
    weights = torch.tensor([1.0, -2.0, 0.5])
    torch.testing.assert_close(table.weighted_sum(mixed, weights, 300), weights @ table.windows(mixed, 300))
