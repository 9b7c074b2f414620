"""Finite scalar quantisation: the grid, straight-through gradients, and the code count."""
import itertools
import math

import pytest
import torch

from polyjepa.audio.fsq import FSQ


@pytest.mark.parametrize("levels", [(8, 5, 5, 5), (2, 3, 4), (7,)])
def test_fsq_rounds_onto_the_grid_and_reaches_every_code(levels):
    fsq = FSQ(levels)
    z = torch.randn(20000, len(levels)) * 3
    q = fsq(z)
    for i, L in enumerate(levels):
        half = L // 2
        grid = torch.tensor([(k - half) / half for k in range(L)])
        assert torch.isin(q[:, i], grid).all()                  # every value is a grid point
        assert len(torch.unique(q[:, i])) == L                   # and every grid point is used
    # the quantised value is the nearest grid point of the bounded value
    b = fsq.bound(z)
    assert torch.allclose(q * torch.tensor([L // 2 for L in levels]), torch.round(b))
    assert fsq.n_codes == math.prod(levels) and fsq.bits == pytest.approx(math.log2(math.prod(levels)))


def test_fsq_indices_are_a_bijection_onto_the_product_grid():
    fsq = FSQ((4, 3, 5))
    idx = torch.arange(fsq.n_codes)
    codes = fsq.indices_to_codes(idx)
    assert torch.equal(fsq.codes_to_indices(codes), idx)
    assert len({tuple(c.tolist()) for c in codes}) == 60
    grids = [[(k - L // 2) / (L // 2) for k in range(L)] for L in (4, 3, 5)]
    assert {tuple(c.tolist()) for c in codes} == set(itertools.product(*grids))
    z = torch.randn(100, 3) * 2
    q = fsq(z)
    assert torch.equal(fsq.indices_to_codes(fsq.codes_to_indices(q)), q)


def test_fsq_gradient_is_straight_through_the_rounding():
    fsq = FSQ((8, 5))
    z = torch.randn(50, 2, requires_grad=True)
    fsq(z).sum().backward()
    z2 = z.detach().clone().requires_grad_(True)
    (fsq.bound(z2) / torch.tensor([4.0, 2.0])).sum().backward()   # the same function without the rounding
    assert torch.allclose(z.grad, z2.grad) and (z.grad > 0).all()


def test_fsq_refuses_bad_levels():
    with pytest.raises(ValueError, match="levels"):
        FSQ((1, 5))
    with pytest.raises(ValueError, match="levels"):
        FSQ(())
