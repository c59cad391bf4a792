"""Ensembles of world models: mean and spread of the members' predictions.

Members are trained on bootstrap resamples of the data so they disagree where the data are thin
(Lakshminarayanan et al. 2017; PETS, Chua et al. 2018). :class:`Ensemble` does this inside
:meth:`Ensemble.loss`: each member sees its own resample (rows drawn with replacement) of every batch,
from a seeded generator, so ``fit`` drives it through ``loss(batch)`` alone. For a fixed bootstrap of a
whole dataset, :func:`bootstrap_indices` gives each member's row indices.

With probabilistic members (:class:`~physwm.models.GaussianMLPModel`) the predictive spread combines
the members' own (aleatoric) variance and their disagreement (epistemic):
``var = mean_i var_i + var_i mean_i``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..checks import positive_int
from .base import WorldModel, check_batch

__all__ = ["Ensemble", "bootstrap_indices"]


def bootstrap_indices(n: int, members: int, seed: int = 0) -> torch.Tensor:
    """Row indices of ``members`` bootstrap resamples of ``n`` rows: int64 ``[members, n]`` (with replacement)."""
    n, members = positive_int(n, "n"), positive_int(members, "members")
    g = torch.Generator().manual_seed(int(seed))
    return torch.randint(0, n, (members, n), generator=g)


class Ensemble(WorldModel):
    """An ensemble of world models of the same system (any mix of WorldModels).

    Args:
        models: the members (same ``state_dim``, ``control_dim`` and ``dt``), differently initialised.
        bootstrap: in :meth:`loss`, give each member its own resample (with replacement) of the batch's
            rows; ``False``: every member sees the whole batch (diversity from initialisation only).
        seed: seed of the resampling; the ``k``-th call of :meth:`loss` uses generator ``(seed, k)``.

    :meth:`step` and :meth:`rollout` return the members' mean; :meth:`predict` the mean and spread of the
    next state; :meth:`member_rollouts` each member's own open-loop trajectory ``[M, B, T+1, n]``.
    """

    def __init__(self, models: Sequence[WorldModel], bootstrap: bool = True, seed: int = 0):
        models = list(models)
        if not models:
            raise ValueError("an Ensemble needs at least one member")
        if not all(isinstance(m, WorldModel) for m in models):
            raise TypeError("Ensemble members must be WorldModels")
        first = models[0]
        for i, m in enumerate(models[1:], 1):
            if (m.state_dim, m.control_dim, m.dt) != (first.state_dim, first.control_dim, first.dt):
                raise ValueError(
                    f"member {i} has (state_dim, control_dim, dt) = {(m.state_dim, m.control_dim, m.dt)}, "
                    f"member 0 has {(first.state_dim, first.control_dim, first.dt)}"
                )
        super().__init__(first.state_dim, first.control_dim, first.dt)
        self.members = nn.ModuleList(models)
        self.bootstrap = bool(bootstrap)
        self.seed = int(seed)
        self._draws = 0

    def __len__(self) -> int:
        return len(self.members)

    @torch.no_grad()
    def fit_normalization(self, states: torch.Tensor, controls: torch.Tensor) -> Ensemble:
        super().fit_normalization(states, controls)
        for m in self.members:
            m.fit_normalization(states, controls)
        return self

    def member_predictions(self, x: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each member's predictive mean and std of the next state, each ``[M, ..., n]``."""
        self._check(x, u)
        means, stds = zip(*(m.predict(x, u) for m in self.members))
        return torch.stack(means), torch.stack(stds)

    def predict(self, x: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean ``[..., n]`` and std ``[..., n]`` of the next state: members' own variance plus their spread."""
        means, stds = self.member_predictions(x, u)
        mean = means.mean(0)
        var = stds.pow(2).mean(0) + means.var(0, unbiased=False)
        return mean, var.sqrt()

    def step(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        self._check(x, u)
        return torch.stack([m.step(x, u) for m in self.members]).mean(0)

    def member_rollouts(self, x0: torch.Tensor, u: torch.Tensor, **kwargs) -> torch.Tensor:
        """Every member's own open-loop rollout: ``x0 [B, n]``, ``u [B, T, m]`` -> ``[M, B, T+1, n]``.

        Extra keyword arguments (e.g. a recurrent member's context) go to each member's ``rollout``.
        """
        self._check(x0, u)
        return torch.stack([m.rollout(x0, u, **kwargs) for m in self.members])

    def rollout(self, x0: torch.Tensor, u: torch.Tensor, **kwargs) -> torch.Tensor:
        """Mean over members of their own rollouts, ``[B, T+1, n]``."""
        return self.member_rollouts(x0, u, **kwargs).mean(0)

    def rollout_stats(self, x0: torch.Tensor, u: torch.Tensor, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std over members of their own rollouts, each ``[B, T+1, n]``."""
        trajs = self.member_rollouts(x0, u, **kwargs)
        return trajs.mean(0), trajs.std(0, unbiased=False)

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """Sum of the members' losses, each on its own bootstrap resample of the batch's rows.

        The sum (not the mean) gives every member the gradient of its own loss, as if trained alone.
        Metrics: the members' mean loss and mean of each metric they report.
        """
        s, c = check_batch(batch, self.state_dim, self.control_dim)
        B = s.shape[0]
        if self.bootstrap and self.training:
            idx = bootstrap_indices(B, len(self.members), seed=self.seed * 1_000_003 + self._draws).to(s.device)
            self._draws += 1
        else:
            idx = None
        total = s.new_zeros(())
        sums: dict[str, float] = {}
        for i, m in enumerate(self.members):
            sub = batch if idx is None else {"states": s[idx[i]], "controls": c[idx[i]]}
            li, mi = m.loss(sub)
            total = total + li
            sums["member_loss"] = sums.get("member_loss", 0.0) + float(li.detach())
            for k, v in mi.items():
                sums[k] = sums.get(k, 0.0) + v
        return total, {k: v / len(self.members) for k, v in sums.items()}
