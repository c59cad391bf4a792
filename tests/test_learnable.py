"""``floored``: ``max(raw, floor)`` with a straight-through gradient, on every path it can take."""

import torch

from physwm.systems.learnable import floored, transforms_active


def test_floored_values_without_gradient_are_the_clamp():
    raw = torch.tensor([-0.5, 0.0, 0.3, 2.0], dtype=torch.float64)
    with torch.no_grad():
        out = floored(raw, 0.1)
    assert torch.equal(out, torch.tensor([0.1, 0.1, 0.3, 2.0], dtype=torch.float64))
    assert torch.equal(floored(raw, 0.1), out)  # grad enabled, raw not requiring it: the same values


def test_floored_gradient_is_straight_through_below_the_floor():
    raw = torch.tensor([-0.5, 0.3], dtype=torch.float64, requires_grad=True)
    (floored(raw, 0.1) * torch.tensor([2.0, 3.0], dtype=torch.float64)).sum().backward()
    # a plain clamp would give 0 for the entry below its floor
    assert torch.equal(raw.grad, torch.tensor([2.0, 3.0], dtype=torch.float64))


def test_floored_gradient_is_straight_through_inside_torch_func():
    raw = torch.tensor([-0.5, 0.3], dtype=torch.float64)  # no requires_grad: jacrev differentiates it itself
    jac = torch.func.jacrev(lambda r: floored(r, 0.1))(raw)
    assert torch.equal(jac, torch.eye(2, dtype=torch.float64))
    batched = torch.func.vmap(lambda r: floored(r, 0.1))(raw[:, None])
    assert torch.equal(batched[:, 0], torch.tensor([0.1, 0.3], dtype=torch.float64))


def test_transforms_active_only_inside_torch_func():
    assert transforms_active() is False  # outside: validation and finiteness checks read values
    seen = []
    torch.func.vmap(lambda r: seen.append(transforms_active()) or r)(torch.zeros(3))
    assert seen == [True]
