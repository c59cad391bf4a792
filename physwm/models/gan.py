"""A conditional GAN world model: a generator of the next state's change given state, control and noise.

The generator ``G(norm(x_t), norm(u_t), z)`` (``z ~ N(0, I)`` of size ``noise_dim``) outputs the normalised
one-step change, like every delta-predicting network in :mod:`physwm.models.implicit`; a discriminator
``D(norm(x_t), norm(u_t), change)`` scores transitions as real (from data) or generated. As in
conditional-GAN dynamics and image-to-image models (pix2pix, Isola et al. 2017), the generator's objective
is a reconstruction term plus a weighted adversarial term.

**One scalar for plain** :func:`~physwm.train.fit`. ``fit`` calls ``model.loss(batch)`` once per minibatch and
steps one optimiser over every trainable parameter, so :meth:`GANModel.loss` returns one scalar whose
gradient is, at the same time, the generator's gradient for the generator's weights and the
discriminator's gradient for the discriminator's weights (simultaneous gradient descent on the two
players, the scheme most GAN analyses study):

* the discriminator's logistic loss ``L_D = BCE(D(real), 1) + BCE(D(G.detach()), 0)`` reaches only the
  discriminator (the generated change is detached);
* the generator's non-saturating loss ``L_G = BCE(D(G), 1)`` is computed with the discriminator's weights
  *detached* (``torch.func.functional_call`` with detached copies), so it reaches only the generator;
* the scalar is ``recon + adversarial_weight * L_G + (L_D - L_D.detach())``: its *value* is the generator's
  objective (what ``fit`` logs and early-stops on when there is no validation data), while its gradient
  also carries ``L_D``'s.

Why not the alternatives: a model that steps its own discriminator optimiser inside ``loss`` would step
it again on every L-BFGS closure evaluation, keep optimiser state that ``fit``'s checkpoints do not save
(so resuming would not be bit for bit) and hide a learning rate from :class:`~physwm.train.FitConfig`; a
gradient-reversal layer gives the discriminator ``-L_G``, the saturating minimax loss, whose gradient
vanishes once the discriminator wins. Here both players share ``fit``'s optimiser, learning rate,
gradient clipping and checkpoints, and nothing in ``fit`` knows about GANs.

Prediction (:meth:`GANModel.step`, ``rollout``) uses the noise's mode ``z = 0``; :meth:`GANModel.sample_step`
draws ``z`` from a given generator. Training noise comes from seeded generators (``seed``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call

from ..checks import positive_int
from .base import check_batch
from .fields import make_mlp
from .implicit import DeltaModel, seeded_noise

__all__ = ["GANModel"]


class GANModel(DeltaModel):
    """Conditional GAN dynamics model: ``x_{t+1} = x_t + denorm(G([norm(x_t), norm(u_t), z]))``.

    The loss over a batch's window is the open-loop rollout reconstruction MSE of the generator with
    sampled noise (errors in units of the one-step change's spread, as :class:`~physwm.models.VAEModel`),
    plus ``adversarial_weight`` times the generator's non-saturating adversarial loss on the batch's
    one-step transitions from true states, plus (in the gradient only) the discriminator's loss on them;
    see the module docstring. Metrics: ``mse`` (reconstruction), ``g_adv``, ``d_loss``, ``d_real`` and
    ``d_fake`` (the discriminator's mean probability that real and generated transitions are real).

    Args:
        state_dim, control_dim: n and m.
        dt: control period, s.
        noise_dim: size of the generator's noise ``z``.
        hidden: hidden widths of the generator.
        disc_hidden: hidden widths of the discriminator.
        activation: one of :data:`~physwm.models.fields.ACTIVATIONS` (both networks).
        adversarial_weight: weight of the generator's adversarial term against the reconstruction (>= 0).
        seed: seed of the training noise.

    Shapes: ``step(x [..., n], u [..., m]) -> [..., n]``.
    """

    def __init__(
        self,
        state_dim: int,
        control_dim: int,
        dt: float = 0.02,
        noise_dim: int = 4,
        hidden: Sequence[int] = (128, 128, 128),
        disc_hidden: Sequence[int] = (128, 128),
        activation: str = "silu",
        adversarial_weight: float = 0.01,
        seed: int = 0,
    ):
        super().__init__(state_dim, control_dim, dt)
        self.noise_dim = positive_int(noise_dim, "noise_dim")
        if not (isinstance(adversarial_weight, (int, float)) and adversarial_weight >= 0):
            raise ValueError(f"adversarial_weight must be a number >= 0, got {adversarial_weight!r}")
        self.adversarial_weight = float(adversarial_weight)
        self.generator = make_mlp(state_dim + control_dim + noise_dim, state_dim, hidden, activation)
        self.discriminator = make_mlp(2 * state_dim + control_dim, 1, disc_hidden, activation)
        self.seed = int(seed)
        self._draws = 0

    def generate(self, x: torch.Tensor, u: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Normalised change ``[..., n]`` generated for states ``x [..., n]``, controls ``u [..., m]`` and
        noise ``z [..., noise_dim]``."""
        self._check(x, u)
        if z.shape[-1] != self.noise_dim or z.shape[:-1] != x.shape[:-1]:
            raise ValueError(f"z must have shape {tuple(x.shape[:-1]) + (self.noise_dim,)}, got {tuple(z.shape)}")
        return self.generator(torch.cat((self._inputs(x, u), z.to(x.dtype)), dim=-1))

    def step(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        self._check(x, u)
        z = x.new_zeros(*x.shape[:-1], self.noise_dim)
        return self._next(x, self.generate(x, u, z))

    def sample_step(self, x: torch.Tensor, u: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A sample of the next state ``[..., n]``, its noise drawn with ``generator`` (a CPU ``torch.Generator``)."""
        self._check(x, u)
        z = torch.randn((*x.shape[:-1], self.noise_dim), generator=generator, dtype=x.dtype).to(x.device)
        return self._next(x, self.generate(x, u, z))

    def critic(self, x: torch.Tensor, u: torch.Tensor, change: torch.Tensor) -> torch.Tensor:
        """The discriminator's logit ``[...]`` that the normalised ``change [..., n]`` from ``x``, ``u`` is real."""
        return self.discriminator(torch.cat((self._inputs(x, u), change), dim=-1)).squeeze(-1)

    def _noise(self, like: torch.Tensor) -> torch.Tensor:
        shape = (*like.shape[:-1], self.noise_dim)
        if not self.training:
            return like.new_zeros(shape)
        z = seeded_noise(self.seed, self._draws, shape, like)
        self._draws += 1
        return z

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        s, c = check_batch(batch, self.state_dim, self.control_dim)
        # reconstruction: the open-loop rollout of the generator with sampled noise
        x, recon = s[:, 0], 0.0
        for t in range(c.shape[1]):
            x = self._next(x, self.generate(x, c[:, t], self._noise(x)))
            recon = recon + self.scaled_error(x, s[:, t + 1]).pow(2).mean()
        recon = recon / c.shape[1]
        # adversarial terms on the one-step transitions from the true states
        xs, real = s[:, :-1], self._target(s)
        fake = self.generate(xs, c, self._noise(xs))
        bce = nn.functional.binary_cross_entropy_with_logits
        logit_real = self.critic(xs, c, real)
        logit_fake = self.critic(xs, c, fake.detach())
        d_loss = bce(logit_real, torch.ones_like(logit_real)) + bce(logit_fake, torch.zeros_like(logit_fake))
        frozen = {k: v.detach() for k, v in self.discriminator.named_parameters()}
        logit_g = functional_call(self.discriminator, frozen, (torch.cat((self._inputs(xs, c), fake), dim=-1),))
        g_adv = bce(logit_g.squeeze(-1), torch.ones_like(logit_real))
        total = recon + self.adversarial_weight * g_adv + (d_loss - d_loss.detach())
        metrics = {
            "mse": float(recon.detach()),
            "g_adv": float(g_adv.detach()),
            "d_loss": float(d_loss.detach()),
            "d_real": float(torch.sigmoid(logit_real).mean().detach()),
            "d_fake": float(torch.sigmoid(logit_fake).mean().detach()),
        }
        return total, metrics
