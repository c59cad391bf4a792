"""Models of a family of systems: shared weights plus one context per member (CaDM-style training).

A *family* is a set of systems that differ in a few numbers (pole lengths 0.4-0.6 m, say). One model is
trained on data of all of them at once; each member (a group of episodes recorded with the same constants)
has its own *context*, and the rest is shared. At test time only the context of the new system is estimated
(:func:`physwm.train.adapt_context`), from a few transitions.

* :class:`FamilyModel` (physics-based: explicit models, hybrids): the context is a chosen subset of the
  model's learnable physical constants (``per_member``: e.g. the pole length). The other constants and a
  hybrid's residual are shared. The current context is the base model's own constants, so a FamilyModel
  rolls out, plans and adapts like its base.
* :class:`ContextMLP` (implicit): an MLP of ``[norm(x), norm(u), c]`` predicting the normalised change, with
  a learned context vector ``c`` of ``context_dim`` numbers per member (an embedding, not an encoder; see
  the class).

Both keep the members' contexts as a parameter table ``[members, k]`` trained with the shared weights; a
training batch names each window's member under ``"member"`` (``[B]`` long), and a batch without it uses
the current context. Everything is read from the model and the system's description: no system is named.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call

from ..systems import System
from .base import WorldModel, check_batch, quiet_rollout, report_divergence
from .fields import make_mlp
from .implicit import DeltaModel

__all__ = ["FamilyModel", "ContextMLP", "check_members"]


def check_members(member: torch.Tensor, batch_size: int, members: int) -> torch.Tensor:
    """``member`` as a long tensor ``[batch_size]`` of indices in ``[0, members)``.

    Raises:
        TypeError: not an integer tensor.
        ValueError: another length, or an index out of range.
    """
    if not isinstance(member, torch.Tensor) or member.is_floating_point() or member.dtype == torch.bool:
        raise TypeError(f"member must be an integer tensor [B] of member indices, got {member!r:.80}")
    if member.shape != (batch_size,):
        raise ValueError(f"member must have shape [B={batch_size}] (one member per window), got {tuple(member.shape)}")
    if batch_size and (int(member.min()) < 0 or int(member.max()) >= members):
        raise ValueError(f"member indices must lie in [0, {members}), got {int(member.min())}..{int(member.max())}")
    return member.long()


def _check_count(members: int) -> int:
    if not isinstance(members, int) or isinstance(members, bool) or members < 1:
        raise ValueError(f"members must be a positive int (the number of systems in the family), got {members!r}")
    return members


class FamilyModel(WorldModel):
    """A physics-based model of a family: shared weights and constants, ``per_member`` constants per member.

    Args:
        base: a physics-based WorldModel (an :class:`~physwm.models.ODEModel` of an explicit or hybrid field,
            as :func:`~physwm.models.build` makes them) with exactly one System module holding the
            ``per_member`` constants as learnable constants.
        per_member: the constants that differ between members (names of the system's learnable constants).
        members: number of members of the family.

    Attributes:
        base: the model at the current context (its constants hold the current member's values).
        member_raw: ``[members, k]`` the members' constants in the System's raw units (``value / scale``).

    ``rollout``/``step`` use the current context; :meth:`member_rollout` each window's member's.
    """

    def __init__(self, base: nn.Module, per_member: Sequence[str], members: int):
        for attr in ("state_dim", "control_dim", "dt", "rollout", "fit_normalization"):
            if not hasattr(base, attr):
                raise TypeError(f"base must be a WorldModel (missing {attr!r}), got {type(base).__name__}")
        super().__init__(base.state_dim, base.control_dim, base.dt)
        if isinstance(per_member, str) or not per_member:
            raise ValueError(f"per_member must be a non-empty list of constant names, got {per_member!r}")
        systems = [(path, mod) for path, mod in base.named_modules() if isinstance(mod, System)]
        learnable = sorted({n for _, mod in systems for n in mod.learnable})
        keys, paths = [], []
        for name in per_member:
            holders = [path for path, mod in systems if name in mod.learnable]
            if not holders:
                raise ValueError(f"per_member names {name!r}, not a learnable constant of the base model; valid: "
                                 f"{learnable}")  # fmt: skip
            if len(holders) > 1:
                raise ValueError(f"{name!r} is a constant of {len(holders)} System modules ({holders}); a family "
                                 "model needs exactly one (not an ensemble)")  # fmt: skip
            paths.append(holders[0])
            keys.append(f"{holders[0]}.raw.{name}" if holders[0] else f"raw.{name}")
        if len(set(per_member)) != len(per_member):
            raise ValueError(f"per_member repeats a constant: {list(per_member)}")
        self.base = base
        self.per_member = tuple(per_member)
        self.members = _check_count(members)
        self.keys, self.paths = tuple(keys), tuple(paths)
        start = torch.stack([self.current_raw(key).detach() for key in keys])
        self.member_raw = nn.Parameter(start.expand(members, -1).clone())

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, per_member={self.per_member}, members={self.members}"

    def config(self) -> dict:
        return {"per_member": list(self.per_member), "members": self.members}

    def current_raw(self, key: str) -> torch.Tensor:
        """The base model's raw constant ``key`` (a ``"<module path>.raw.<name>"`` of :attr:`keys`)."""
        return self.base.get_parameter(key)

    @torch.no_grad()
    def set_context(self, member: int | None = None, values: dict[str, float] | None = None) -> FamilyModel:
        """Set the current context: member ``member``'s constants, ``values`` (physical units), or with
        neither, the members' mean."""
        if values is not None:
            unknown = sorted(set(values) - set(self.per_member))
            if unknown:
                raise ValueError(f"unknown context constants {unknown}; valid: {list(self.per_member)}")
        for j, key in enumerate(self.keys):
            raw = self.current_raw(key)
            if values is not None:
                if self.per_member[j] in values:
                    raw.fill_(float(values[self.per_member[j]]) / self._spec(j).scale)
            elif member is None:
                raw.fill_(float(self.member_raw[:, j].mean()))
            else:
                raw.fill_(float(self.member_raw[check_members(torch.tensor([member]), 1, self.members)[0], j]))
        return self

    @torch.no_grad()
    def store_context(self, member: int) -> None:
        """Copy the current context into member ``member``'s row of :attr:`member_raw`."""
        g = int(check_members(torch.tensor([member]), 1, self.members)[0])
        for j, key in enumerate(self.keys):
            self.member_raw[g, j] = self.current_raw(key).to(self.member_raw.dtype)

    def _spec(self, j: int):
        """The :class:`~physwm.systems.Constant` of context entry ``j`` (scale and floor)."""
        return type(self.base.get_submodule(self.paths[j])).constants[self.per_member[j]]

    def member_constants(self) -> dict[str, list[float]]:
        """Each member's constants, physical units: ``{name: [members]}`` (floored at each constant's bound)."""
        out = {}
        for j, name in enumerate(self.per_member):
            spec = self._spec(j)
            out[name] = [spec.scale * max(float(v), spec.floor) for v in self.member_raw[:, j].detach()]
        return out

    def context(self) -> dict[str, float]:
        """The current context (the base's ``per_member`` constants), physical units."""
        out = {}
        for j, (name, key) in enumerate(zip(self.per_member, self.keys)):
            spec = self._spec(j)
            out[name] = spec.scale * max(float(self.current_raw(key).detach()), spec.floor)
        return out

    @torch.no_grad()
    def fit_normalization(self, states: torch.Tensor, controls: torch.Tensor) -> FamilyModel:
        """Set the statistics of this model and of its base from the same data."""
        super().fit_normalization(states, controls)
        self.base.fit_normalization(states, controls)
        return self

    def step(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return self.base.step(x, u)

    def rollout(self, x0: torch.Tensor, u: torch.Tensor, *, warn_divergence: bool = True) -> torch.Tensor:
        """The base model's rollout at the current context (see :meth:`WorldModel.rollout`)."""
        return self.base.rollout(x0, u, warn_divergence=warn_divergence)

    def forward(self, x0: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """The open-loop rollout at the current context without the divergence warning (what
        :meth:`member_rollout` calls with each member's constants in place)."""
        return self.base.rollout(x0, u, warn_divergence=False)

    def member_rollout(self, x0: torch.Tensor, u: torch.Tensor, member: torch.Tensor) -> torch.Tensor:
        """Open-loop rollouts ``x0 [B, n]``, ``u [B, T, m]`` -> ``[B, T+1, n]``, window ``b`` with member
        ``member[b]``'s constants (one rollout per member present; differentiable in :attr:`member_raw`)."""
        self._check_rollout(x0, u)
        member = check_members(member, x0.shape[0], self.members)
        pieces, order = [], []
        for g in torch.unique(member).tolist():
            idx = (member == g).nonzero().squeeze(1)
            params = {f"base.{key}": self.member_raw[g, j] for j, key in enumerate(self.keys)}
            pieces.append(functional_call(self, params, (x0[idx], u[idx]), strict=False))
            order.append(idx)
        out = torch.cat(pieces)
        return out[torch.argsort(torch.cat(order))]

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """Rollout MSE (see :meth:`WorldModel.loss`) with each window's member's constants (``batch["member"]``,
        ``[B]``), or at the current context without it; plus the base field's regularisation if it has one."""
        if "member" not in batch:
            return self.base.loss(batch)
        s, c = check_batch(batch, self.state_dim, self.control_dim)
        pred = self.member_rollout(s[:, 0], c, batch["member"])[:, 1:]
        err = self.scaled_error(pred, s[:, 1:])
        total = err.pow(2).mean()
        metrics = {"mse": float(total.detach()), "mse_data": self.data_mse(err)}
        reg = getattr(getattr(self.base, "field", None), "regularization", None)
        if reg is not None:
            extra, extra_metrics = reg(s[:, :-1], c.to(s.dtype), data_mse=metrics["mse_data"])
            total = total + extra
            metrics.update(extra_metrics)
        return total, metrics


class ContextMLP(DeltaModel):
    """An MLP of a family: ``x_{t+1} = x_t + denorm(mlp([norm(x_t), norm(u_t), c]))``, ``c`` a learned context.

    Each member has its own context vector (a row of :attr:`member_context`, learned with the shared
    weights, as a per-trajectory embedding); :attr:`context` is the current one (set to the members' mean
    after training, then estimated from a few transitions of a new system by
    :func:`~physwm.train.adapt_context`). An embedding rather than CaDM's encoder of the last K transitions:
    adaptation is then an explicit least-squares estimate of ``context_dim`` numbers from however many
    transitions there are (10 or 300), the same procedure as a physics model's re-identification, where an
    encoder is trained for one history length and cannot use more.

    Args:
        state_dim, control_dim: n and m.
        dt: control period, s.
        context_dim: numbers per context.
        members: number of members of the family.
        hidden: hidden-layer widths.
        activation: one of :data:`~physwm.models.fields.ACTIVATIONS`.
        seed: seed of the network's initial weights (the global random state is left as it was).

    Shapes: ``step(x [..., n], u [..., m]) -> [..., n]``.
    """

    def __init__(self, state_dim: int, control_dim: int, dt: float = 0.02, context_dim: int = 4, members: int = 1,
                 hidden: Sequence[int] = (128, 128, 128), activation: str = "silu", seed: int = 0):  # fmt: skip
        super().__init__(state_dim, control_dim, dt)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"seed must be an int, got {seed!r}")
        if not isinstance(context_dim, int) or isinstance(context_dim, bool) or context_dim < 1:
            raise ValueError(f"context_dim must be a positive int, got {context_dim!r}")
        self.context_dim = context_dim
        self.members = _check_count(members)
        self.hidden, self.activation = tuple(hidden), activation
        with torch.random.fork_rng(devices=[]):  # the initial weights depend on the seed alone
            torch.manual_seed(seed)
            self.net = make_mlp(state_dim + control_dim + context_dim, state_dim, hidden, activation)
        self.member_context = nn.Parameter(torch.zeros(members, context_dim))
        self.context = nn.Parameter(torch.zeros(context_dim))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, context_dim={self.context_dim}, members={self.members}"

    def config(self) -> dict:
        return {"context_dim": self.context_dim, "members": self.members, "hidden": list(self.hidden),
                "activation": self.activation}  # fmt: skip

    @torch.no_grad()
    def set_context(self, member: int | None = None) -> ContextMLP:
        """Set the current context to member ``member``'s, or (``None``) to the members' mean."""
        if member is None:
            self.context.copy_(self.member_context.mean(0))
        else:
            self.context.copy_(self.member_context[check_members(torch.tensor([member]), 1, self.members)[0]])
        return self

    def context_step(self, x: torch.Tensor, u: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Next state ``[..., n]`` of ``x [..., n]``, ``u [..., m]`` under ``context [..., d]``."""
        inputs = torch.cat((self._inputs(x, u), context.to(x.dtype).expand(*x.shape[:-1], -1)), dim=-1)
        return self._next(x, self.net(inputs))

    def step(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        self._check(x, u)
        return self.context_step(x, u, self.context)

    def context_rollout(self, x0: torch.Tensor, u: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Open-loop rollouts ``x0 [B, n]``, ``u [B, T, m]`` under ``context [B, d]`` -> ``[B, T+1, n]``."""
        self._check_rollout(x0, u)
        if context.shape != (x0.shape[0], self.context_dim):
            raise ValueError(f"context must have shape [B={x0.shape[0]}, {self.context_dim}], got "
                             f"{tuple(context.shape)}")  # fmt: skip
        states, x = [x0], x0
        for t in range(u.shape[1]):
            x = self.context_step(x, u[:, t], context)
            states.append(x)
        return torch.stack(states, dim=1)

    def rollout(self, x0: torch.Tensor, u: torch.Tensor, *, warn_divergence: bool = True) -> torch.Tensor:
        """Open-loop rollout at the current context (see :meth:`WorldModel.rollout`)."""
        out = self.context_rollout(x0, u, self.context.expand(x0.shape[0], -1))
        if warn_divergence:
            report_divergence(out, type(self).__name__)
        return out

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """Rollout MSE (see :meth:`WorldModel.loss`), each window under its member's context
        (``batch["member"]``, ``[B]``), or the current context without it."""
        s, c = check_batch(batch, self.state_dim, self.control_dim)
        if "member" in batch:
            ctx = self.member_context[check_members(batch["member"], s.shape[0], self.members)]
            pred = self.context_rollout(s[:, 0], c, ctx)[:, 1:]
        else:
            pred = quiet_rollout(self, s[:, 0], c)[:, 1:]
        err = self.scaled_error(pred, s[:, 1:])
        mse = err.pow(2).mean()
        return mse, {"mse": float(mse.detach()), "mse_data": self.data_mse(err)}
