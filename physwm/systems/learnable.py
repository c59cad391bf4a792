"""Projected gradient descent for physical constants with a lower bound.

A learnable constant is stored as ``raw`` and used as :func:`floored` ``(raw, floor) = max(raw, floor)``
with a straight-through gradient; :func:`project_gradient` (a post-accumulate-grad hook on ``raw``) then
drops the gradient components that would push ``raw`` below its floor. Together this is projected
gradient descent onto ``raw >= floor``: a constant can sit exactly on its bound (zero friction: the
nominal physics, bit for bit) and still leave it when the data ask for it, which a smooth transform
(softplus, exp) cannot do: its gradient vanishes at the bound. Masking the total gradient, not each use's
share, makes backprop and the adjoint method agree.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["floored", "project_gradient", "transforms_active"]


class _StraightThroughClamp(torch.autograd.Function):
    """``max(raw, floor)`` in the forward pass, the identity in the backward pass.

    Written in the ``setup_context`` style, so torch.func's transforms (``jacrev``, ``vmap``: the planners'
    linearisations) go through it. (No forward-mode rule: torch.compile cannot trace a custom ``jvp``.)
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(raw: torch.Tensor, floor: float) -> torch.Tensor:
        return raw.clamp_min(floor)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        pass

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


def floored(raw: torch.Tensor, floor: float) -> torch.Tensor:
    """``max(raw, floor)`` with the identity as its gradient (see the module docstring)."""
    if not torch.compiler.is_compiling() and not (torch.is_grad_enabled() and raw.requires_grad) \
            and not transforms_active():  # (compiled code traces the Function, as it always did)
        # no gradient can flow: the plain clamp, without autograd.Function.apply's per-call cost (it binds the
        # forward's signature with inspect on every call, about 0.1 ms: most of the cost of a system's constants
        # in a short rollout, such as the online re-identification's)
        return raw.clamp_min(floor)
    return _StraightThroughClamp.apply(raw, floor)


def transforms_active() -> bool:
    """True inside torch.func transforms (``vmap``, ``jacrev``, ...), where values cannot steer Python and the
    Function's own rules must run."""
    active = getattr(torch._C, "_are_functorch_transforms_active", None)  # tested: tests/test_learnable.py
    return False if active is None else bool(active())


def project_gradient(floor: float) -> Callable[[torch.Tensor], None]:
    """Post-accumulate-grad hook: at or below ``floor`` keep only gradients whose descent step moves up.

    It acts on ``.grad`` once it is accumulated (``backward``), so on the total gradient; the inner
    ``autograd.grad`` calls of the adjoint method are left alone.
    """

    def hook(raw: torch.Tensor) -> None:
        if raw.grad is not None:
            raw.grad.masked_fill_((raw.detach() <= floor) & (raw.grad > 0), 0.0)

    return hook
