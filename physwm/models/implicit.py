"""Implicit (discrete-time) world models: networks that predict the state change over one period ``dt``.

Every model here predicts the *normalised* one-step change ``(x_{t+1} - x_t - delta_mean) / delta_std``
from normalised inputs (statistics in the model's buffers, set by
:meth:`~physwm.models.WorldModel.fit_normalization`), and returns ``x_t + change`` in physical units.

* :class:`MLPModel`: a feed-forward net of ``(x_t, u_t)``;
* :class:`GaussianMLPModel`: the same with a Gaussian head (mean and soft-bounded log-variance) trained
  by negative log-likelihood, the probabilistic member of PETS / mbrl-lib ensembles;
* :class:`VAEModel`: the classic "World Models" recipe (Ha & Schmidhuber 2018) on states: ``(x_t, u_t)``
  is encoded to a Gaussian latent, the next state is decoded from a sample of it, with a KL term;
* :class:`GRUModel`: recurrent, its hidden state carries the history (warm-up context in ``rollout``);
* :class:`TransformerModel`: a causal transformer over a window of past ``(x, u)`` tokens.

Recurrent and attention models keep their memory inside :meth:`rollout`; their :meth:`step` is a
one-step prediction with no history. Their loss is the teacher-forced one-step loss over every step of
the batch's window (the true states are fed in, the change at every step predicted).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..checks import nonnegative_int, positive_int
from .base import WorldModel, check_batch, report_divergence
from .fields import make_mlp

__all__ = ["DeltaModel", "seeded_noise", "MLPModel", "GaussianMLPModel", "VAEModel", "GRUModel", "TransformerModel"]


def seeded_noise(seed: int, draw: int, shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
    """Standard normal noise of ``shape`` from the ``draw``-th generator of ``seed`` (reproducible)."""
    g = torch.Generator().manual_seed((seed * 1_000_003 + draw) % (2**63))
    return torch.randn(tuple(shape), generator=g, dtype=like.dtype).to(like.device)


class DeltaModel(WorldModel):
    """Shared plumbing of delta-predicting networks: normalised inputs, normalised-change outputs.

    ``_inputs(x, u)`` is ``[norm(x), norm(u)]`` ``[..., n + m]``; ``_next(x, d)`` the next state ``x +
    denorm(d)``; ``_target(s)`` the normalised true changes of a batch's states.
    """

    def _inputs(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.state_norm.normalize(x), self.control_norm.normalize(u.to(x.dtype))), dim=-1)

    def _next(self, x: torch.Tensor, delta_normalized: torch.Tensor) -> torch.Tensor:
        return x + self.delta_norm.denormalize(delta_normalized)

    def _target(self, s: torch.Tensor) -> torch.Tensor:
        """Normalised true changes ``[B, H, n]`` of states ``s [B, H+1, n]``."""
        return self.delta_norm.normalize(s[:, 1:] - s[:, :-1])

    def _step_without_history(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """One step of a sequence model (GRU, Transformer) seeing only ``x``, ``u`` (no earlier steps)."""
        self._check(x, u)
        lead = x.shape[:-1]
        B = x.reshape(-1, self.state_dim).shape[0]
        delta = self._sequence_deltas(x.reshape(B, 1, self.state_dim), u.reshape(B, 1, self.control_dim))
        return self._next(x, delta.reshape(*lead, self.state_dim))


class MLPModel(DeltaModel):
    """Feed-forward dynamics model: ``x_{t+1} = x_t + denorm(mlp([norm(x_t), norm(u_t)]))``.

    The loss is :meth:`WorldModel.loss`: the open-loop rollout MSE over the batch horizon, errors in
    units of the one-step change's spread (for ``H = 1``: the MSE of the normalised change).

    Args:
        state_dim, control_dim: n and m.
        dt: control period, s.
        hidden: hidden-layer widths.
        activation: one of :data:`~physwm.models.fields.ACTIVATIONS`.

    Shapes: ``step(x [..., n], u [..., m]) -> [..., n]``.
    """

    def __init__(
        self,
        state_dim: int,
        control_dim: int,
        dt: float = 0.02,
        hidden: Sequence[int] = (128, 128, 128),
        activation: str = "silu",
    ):
        super().__init__(state_dim, control_dim, dt)
        self.net = make_mlp(state_dim + control_dim, state_dim, hidden, activation)

    def step(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        self._check(x, u)
        return self._next(x, self.net(self._inputs(x, u)))


class GaussianMLPModel(DeltaModel):
    """Probabilistic feed-forward model: a Gaussian over the normalised change, trained by NLL.

    The head outputs a mean and a log-variance per state dimension; the log-variance is soft-bounded
    between learnable ``min_logvar`` and ``max_logvar`` (PETS, Chua et al. 2018):
    ``logvar = max - softplus(max - raw)``, then ``logvar = min + softplus(logvar - min)``, and the loss
    adds ``bound_weight * (sum(max_logvar) - sum(min_logvar))`` so the bounds tighten to the data.

    The loss is the teacher-forced one-step Gaussian NLL (normalised units, per dimension, including
    ``0.5 log 2 pi``) over every step of the batch's window. :meth:`step` returns the mean,
    :meth:`predict` the mean and standard deviation in physical units, :meth:`sample_step` a sample.

    Args:
        state_dim, control_dim: n and m.
        dt: control period, s.
        hidden: hidden-layer widths.
        activation: one of :data:`~physwm.models.fields.ACTIVATIONS`.
        min_logvar, max_logvar: initial soft bounds of the normalised log-variance.
        bound_weight: weight of the bound-tightening term.
    """

    def __init__(
        self,
        state_dim: int,
        control_dim: int,
        dt: float = 0.02,
        hidden: Sequence[int] = (128, 128, 128),
        activation: str = "silu",
        min_logvar: float = -10.0,
        max_logvar: float = 0.5,
        bound_weight: float = 0.01,
    ):
        super().__init__(state_dim, control_dim, dt)
        if not min_logvar < max_logvar:
            raise ValueError(f"min_logvar must be < max_logvar, got {min_logvar} and {max_logvar}")
        self.net = make_mlp(state_dim + control_dim, 2 * state_dim, hidden, activation)
        self.min_logvar = nn.Parameter(torch.full((state_dim,), float(min_logvar)))
        self.max_logvar = nn.Parameter(torch.full((state_dim,), float(max_logvar)))
        self.bound_weight = float(bound_weight)

    def distribution(self, x: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised change mean and log-variance, each ``[..., n]``."""
        self._check(x, u)
        mean, raw = self.net(self._inputs(x, u)).chunk(2, dim=-1)
        hi, lo = self.max_logvar.to(raw.dtype), self.min_logvar.to(raw.dtype)
        logvar = hi - nn.functional.softplus(hi - raw)
        logvar = lo + nn.functional.softplus(logvar - lo)
        return mean, logvar

    def step(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return self._next(x, self.distribution(x, u)[0])

    def predict(self, x: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of the next state, each ``[..., n]`` in physical units."""
        mean, logvar = self.distribution(x, u)
        return self._next(x, mean), torch.exp(0.5 * logvar) * self.delta_norm.std.to(x.dtype)

    def sample_step(self, x: torch.Tensor, u: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A sample of the next state ``[..., n]`` drawn with ``generator`` (a CPU ``torch.Generator``)."""
        mean, std = self.predict(x, u)
        eps = torch.randn(tuple(mean.shape), generator=generator, dtype=mean.dtype).to(mean.device)
        return mean + std * eps

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        s, c = check_batch(batch, self.state_dim, self.control_dim)
        mean, logvar = self.distribution(s[:, :-1], c)
        target = self._target(s)
        sq = (mean - target).pow(2)
        nll = 0.5 * (sq * torch.exp(-logvar) + logvar + math.log(2 * math.pi)).mean()
        total = nll + self.bound_weight * (self.max_logvar.sum() - self.min_logvar.sum())
        return total, {"nll": float(nll.detach()), "mse": float(sq.mean().detach()),
                       "mse_data": self.data_mse(mean - target)}  # fmt: skip


class VAEModel(DeltaModel):
    """The "World Models" VAE recipe on states: encode ``(x_t, u_t)`` to ``z``, decode the next state.

    ``q(z | x_t, u_t) = N(mu, diag(sigma^2))`` from an encoder MLP of the normalised inputs; the decoder
    maps a sample ``z`` (reparameterised) to the normalised change. The loss over the batch's window is
    the open-loop rollout reconstruction MSE (errors in units of the change's spread, sampling ``z``
    every step) plus ``beta * KL(q || N(0, I))`` per step; the noise comes from seeded generators.
    Prediction (:meth:`step`, :meth:`rollout`) decodes the posterior mean ``mu``.

    Args:
        state_dim, control_dim: n and m.
        dt: control period, s.
        latent_dim: size of ``z``.
        hidden: hidden widths of the encoder and of the decoder.
        activation: one of :data:`~physwm.models.fields.ACTIVATIONS`.
        beta: KL weight.
        seed: seed of the reparameterisation noise.
    """

    def __init__(
        self,
        state_dim: int,
        control_dim: int,
        dt: float = 0.02,
        latent_dim: int = 16,
        hidden: Sequence[int] = (128, 128),
        activation: str = "silu",
        beta: float = 1e-3,
        seed: int = 0,
    ):
        super().__init__(state_dim, control_dim, dt)
        self.latent_dim = positive_int(latent_dim, "latent_dim")
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.beta = float(beta)
        self.encoder = make_mlp(state_dim + control_dim, 2 * latent_dim, hidden, activation)
        self.decoder = make_mlp(latent_dim, state_dim, hidden, activation)
        self.seed = int(seed)
        self._draws = 0

    def encode(self, x: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance of ``z``, each ``[..., latent_dim]``."""
        mu, logvar = self.encoder(self._inputs(x, u)).chunk(2, dim=-1)
        return mu, logvar.clamp(-12.0, 6.0)

    def step(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        self._check(x, u)
        mu, _ = self.encode(x, u)
        return self._next(x, self.decoder(mu))

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        s, c = check_batch(batch, self.state_dim, self.control_dim)
        x = s[:, 0]
        recon = kl = recon_data = 0.0
        for t in range(c.shape[1]):
            mu, logvar = self.encode(x, c[:, t])
            eps = seeded_noise(self.seed, self._draws, mu.shape, mu) if self.training else torch.zeros_like(mu)
            self._draws += 1
            z = mu + torch.exp(0.5 * logvar) * eps
            x = self._next(x, self.decoder(z))
            err = self.scaled_error(x, s[:, t + 1])
            recon = recon + err.pow(2).mean()
            recon_data = recon_data + self.data_mse(err)
            kl = kl + 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1).mean()
        recon, kl = recon / c.shape[1], kl / c.shape[1]
        total = recon + self.beta * kl
        return total, {"mse": float(recon.detach()), "kl": float(kl.detach()), "mse_data": recon_data / c.shape[1]}


class GRUModel(DeltaModel):
    """Recurrent dynamics model: a GRU over ``[norm(x_t), norm(u_t)]``, a linear head to the change.

    The hidden state summarises the history, so it can model effects the current state does not show
    (hidden parameters, delays). :meth:`rollout` carries it from step to step and can be warmed up on a
    context of past states and controls; :meth:`step` predicts from an empty history.

    Args:
        state_dim, control_dim: n and m.
        dt: control period, s.
        hidden_size: GRU width.
        num_layers: stacked GRU layers.
        warmup: steps at the start of each training window used only to warm the hidden state (not
            scored; at least one step of each window is always scored).
    """

    def __init__(
        self,
        state_dim: int,
        control_dim: int,
        dt: float = 0.02,
        hidden_size: int = 128,
        num_layers: int = 1,
        warmup: int = 0,
    ):
        super().__init__(state_dim, control_dim, dt)
        self.hidden_size = positive_int(hidden_size, "hidden_size")
        self.num_layers = positive_int(num_layers, "num_layers")
        self.warmup = nonnegative_int(warmup, "warmup")
        self.gru = nn.GRU(state_dim + control_dim, hidden_size, num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, state_dim)

    def sequence(
        self, states: torch.Tensor, controls: torch.Tensor, hidden: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced pass: ``states [B, L, n]``, ``controls [B, L, m]`` -> normalised changes ``[B, L, n]``
        (entry ``t`` predicts ``x_{t+1} - x_t``) and the final hidden state ``[layers, B, hidden]``."""
        self._check(states, controls)
        out, hidden = self.gru(self._inputs(states, controls), hidden)
        return self.head(out), hidden

    def warm_up(self, context_states: torch.Tensor, context_controls: torch.Tensor) -> torch.Tensor:
        """Hidden state after reading ``K`` past steps: ``context_states [B, K, n]``, ``context_controls [B, K, m]``."""
        if context_states.ndim != 3 or context_states.shape[:2] != context_controls.shape[:2]:
            raise ValueError(
                f"context must be states [B, K, n] and controls [B, K, m], got "
                f"{tuple(context_states.shape)} and {tuple(context_controls.shape)}"
            )
        return self.sequence(context_states, context_controls)[1]

    def _sequence_deltas(self, states: torch.Tensor, controls: torch.Tensor) -> torch.Tensor:
        return self.sequence(states, controls)[0]

    def step(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return self._step_without_history(x, u)

    def rollout(
        self,
        x0: torch.Tensor,
        u: torch.Tensor,
        context_states: torch.Tensor | None = None,
        context_controls: torch.Tensor | None = None,
        *,
        warn_divergence: bool = True,
    ) -> torch.Tensor:
        """Open-loop rollout ``x0 [B, n]``, ``u [B, T, m]`` -> ``[B, T+1, n]``, hidden state carried along.

        Optional warm-up context: the ``K`` steps before ``x0``, ``context_states [B, K, n]`` (``x_{-K}``
        ... ``x_{-1}``) and ``context_controls [B, K, m]``.
        """
        self._check_rollout(x0, u)
        if (context_states is None) != (context_controls is None):
            raise ValueError("give both context_states and context_controls, or neither")
        hidden = None if context_states is None else self.warm_up(context_states, context_controls)
        states, x = [x0], x0
        for t in range(u.shape[1]):
            delta, hidden = self.sequence(x[:, None], u[:, t : t + 1], hidden)
            x = self._next(x, delta[:, 0])
            states.append(x)
        out = torch.stack(states, dim=1)
        if warn_divergence:
            report_divergence(out, type(self).__name__)
        return out

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        s, c = check_batch(batch, self.state_dim, self.control_dim)
        delta, _ = self.sequence(s[:, :-1], c)
        skip = min(self.warmup, c.shape[1] - 1)
        err = (delta - self._target(s))[:, skip:]
        mse = err.pow(2).mean()
        return mse, {"mse": float(mse.detach()), "mse_data": self.data_mse(err)}


class TransformerModel(DeltaModel):
    """Causal transformer over a window of the last ``context`` ``(x, u)`` tokens.

    Token ``t`` embeds ``[norm(x_t), norm(u_t)]`` plus a learned position embedding (position within the
    window); a causal mask lets it attend only to tokens ``<= t``; its output predicts the normalised
    change ``x_{t+1} - x_t``. :meth:`rollout` slides the window over its own predictions.

    Args:
        state_dim, control_dim: n and m.
        dt: control period, s.
        d_model: token width.
        heads: attention heads (divides ``d_model``).
        layers: encoder layers.
        context: window length in steps.
        feedforward: width of the feed-forward sublayers (default ``2 * d_model``).
        activation: ``"gelu"`` or ``"relu"`` (the feed-forward sublayers).
    """

    def __init__(
        self,
        state_dim: int,
        control_dim: int,
        dt: float = 0.02,
        d_model: int = 64,
        heads: int = 4,
        layers: int = 2,
        context: int = 32,
        feedforward: int | None = None,
        activation: str = "gelu",
    ):
        super().__init__(state_dim, control_dim, dt)
        for name, v in (("d_model", d_model), ("heads", heads), ("layers", layers), ("context", context)):
            positive_int(v, name)
        if d_model % heads:
            raise ValueError(f"heads ({heads}) must divide d_model ({d_model})")
        if activation not in ("gelu", "relu"):
            raise ValueError(f"unknown activation {activation!r}; valid: ['gelu', 'relu']")
        self.context = context
        self.embed = nn.Linear(state_dim + control_dim, d_model)
        self.position = nn.Embedding(context, d_model)
        layer = nn.TransformerEncoderLayer(
            d_model, heads, feedforward or 2 * d_model, dropout=0.0, activation=activation,
            batch_first=True, norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, state_dim)

    def _window(self, tokens: torch.Tensor) -> torch.Tensor:
        """Outputs ``[B, L, n]`` for token windows ``[B, L, n+m]`` with ``L <= context``."""
        L = tokens.shape[1]
        pos = self.position(torch.arange(L, device=tokens.device)).to(tokens.dtype)
        h = self.embed(tokens) + pos
        mask = torch.ones(L, L, dtype=torch.bool, device=tokens.device).triu(1)  # True = may not attend
        return self.head(self.norm(self.encoder(h, mask=mask, is_causal=True)))

    def sequence(self, states: torch.Tensor, controls: torch.Tensor) -> torch.Tensor:
        """Teacher-forced pass: ``states [B, L, n]``, ``controls [B, L, m]`` -> normalised changes ``[B, L, n]``.

        Output ``t`` depends only on tokens ``max(0, t - context + 1) .. t``.
        """
        self._check(states, controls)
        tokens = self._inputs(states, controls)
        B, L, C = tokens.shape[0], tokens.shape[1], self.context
        if L <= C:
            return self._window(tokens)
        first = self._window(tokens[:, :C])
        windows = tokens.unfold(1, C, 1)[:, 1:]  # [B, L-C, n+m, C]: windows ending at t = C .. L-1
        windows = windows.permute(0, 1, 3, 2).reshape(B * (L - C), C, -1)
        rest = self._window(windows)[:, -1].reshape(B, L - C, -1)
        return torch.cat((first, rest), dim=1)

    def _sequence_deltas(self, states: torch.Tensor, controls: torch.Tensor) -> torch.Tensor:
        return self.sequence(states, controls)

    def step(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return self._step_without_history(x, u)

    def rollout(
        self,
        x0: torch.Tensor,
        u: torch.Tensor,
        context_states: torch.Tensor | None = None,
        context_controls: torch.Tensor | None = None,
        *,
        warn_divergence: bool = True,
    ) -> torch.Tensor:
        """Open-loop rollout ``x0 [B, n]``, ``u [B, T, m]`` -> ``[B, T+1, n]`` over a sliding window.

        Optional context: the ``K`` steps before ``x0`` (``context_states [B, K, n]``,
        ``context_controls [B, K, m]``); only the last ``context - 1`` of them can be seen.
        """
        self._check_rollout(x0, u)
        if (context_states is None) != (context_controls is None):
            raise ValueError("give both context_states and context_controls, or neither")
        if context_states is not None:
            self._check(context_states, context_controls)
            past_x = list(context_states.unbind(1))
            past_u = list(context_controls.unbind(1))
        else:
            past_x, past_u = [], []
        states, x = [x0], x0
        for t in range(u.shape[1]):
            past_x.append(x)
            past_u.append(u[:, t])
            past_x, past_u = past_x[-self.context :], past_u[-self.context :]
            delta = self._window(self._inputs(torch.stack(past_x, 1), torch.stack(past_u, 1)))[:, -1]
            x = self._next(x, delta)
            states.append(x)
        out = torch.stack(states, dim=1)
        if warn_divergence:
            report_divergence(out, type(self).__name__)
        return out

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        s, c = check_batch(batch, self.state_dim, self.control_dim)
        err = self.sequence(s[:, :-1], c) - self._target(s)
        mse = err.pow(2).mean()
        return mse, {"mse": float(mse.detach()), "mse_data": self.data_mse(err)}
