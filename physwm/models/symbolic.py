"""SymbolicField: a sparse linear combination of named candidate terms, on a system's acceleration rows.

The residual of a symbolic hybrid (``ODEModel(HybridField(physics, SymbolicField(...)))``): on each row
``r`` of ``rows`` (by default the system's velocity rows, the accelerations)

.. math::

    \\dot x_r = \\sum_k \\xi_{rk}\\, m_{rk}\\, \\theta_k(x, u)

with candidate terms ``theta_k`` from a library (:meth:`physwm.systems.System.library`, or the user's own
``name -> f(x, u)``), trainable coefficients ``xi`` in physical units (the row's derivative unit per term
unit) and a 0/1 mask ``m`` of the active terms. It is a :class:`~physwm.systems.VectorField` like every
other, so it integrates, fits, saves and plans like them; :meth:`equations` prints it.

The coefficients are stored as ``weight = xi * term_scale`` with ``term_scale`` the spread of each term on
the training data (:meth:`fit_normalization`), so gradient methods see terms of comparable size; refitting
the scale keeps the physical coefficients.

``space="force"`` makes the combination a *generalised force* ``Q_j`` on each velocity coordinate instead
(rows printed ``Q_x``, ``Q_theta``; units N, N m): the field outputs ``Q``, and the hybrid adds the
accelerations ``M(x)^-1 Q`` through the physics' mass matrix (:meth:`physwm.systems.System.mass_matrix`,
with its current, possibly identified, constants). Drag, friction and damping are forces: written this way
they stay single library terms although their effect on the accelerations mixes rows and angles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..checks import check_choice
from ..systems import get_system
from ..systems.base import VectorField, check_state_control
from ..systems.library import check_library, evaluate_library

__all__ = ["SymbolicField", "derivative_name", "force_name", "SPACES", "format_sum"]

#: What a :class:`SymbolicField`'s rows are: accelerations (added as they are) or generalised forces.
SPACES = ("acceleration", "force")


def derivative_name(state_name: str) -> str:
    """How the time derivative of a state entry is printed: ``x_dot -> x_ddot``, ``omega -> d(omega)/dt``."""
    return state_name[:-4] + "_ddot" if state_name.endswith("_dot") else f"d({state_name})/dt"


def force_name(coordinate_name: str) -> str:
    """How the generalised force on a coordinate is printed: ``theta -> Q_theta``."""
    return f"Q_{coordinate_name}"


class SymbolicField(VectorField):
    """A sparse linear combination of named candidate terms on some rows of ``dx/dt`` (see the module doc).

    Args:
        system: the system (name, class or instance) whose states name the rows and whose library is the
            default.
        library: ``None`` (the system's :meth:`~physwm.systems.System.library`) or a dict of named torch
            functions ``f(x [..., n], u [..., m]) -> [...]``; checked on a probe batch (a ValueError naming a
            term that fails, returns the wrong shape or NaN).
        rows: the rows the field outputs (default: the system's velocity rows).
        terms: the active terms: ``None`` (all), or a dict ``row name -> list of term names`` (row names as
            :meth:`equations` prints them, e.g. ``"x_ddot"``; rows left out have none).
        space: ``"acceleration"`` (default) or ``"force"``: generalised forces on the velocity coordinates,
            mapped through the physics' mass matrix by :class:`~physwm.models.HybridField` (the system must
            define :meth:`~physwm.systems.System.mass_matrix`; ``rows`` are then its velocity rows).

    Shapes: ``x [..., n]``, ``u [..., m]`` -> ``[..., len(rows)]``.
    """

    def __init__(
        self,
        system: Any,
        library: Mapping[str, Any] | None = None,
        rows: Sequence[int] | None = None,
        terms: Mapping[str, Sequence[str]] | None = None,
        space: str = "acceleration",
    ):
        super().__init__()
        cls = get_system(system)
        self.space = check_choice(space, "space", SPACES)
        if self.space == "force":
            if not cls.has_mass_matrix():
                raise ValueError(f"space='force' needs a system with a mass_matrix; {cls.__name__} defines none")
            if rows is not None and tuple(int(r) for r in rows) != tuple(cls.velocity_index):
                raise ValueError(f"space='force' acts on the velocity rows {tuple(cls.velocity_index)}, got {rows!r}")
        self.system = cls
        self.state_dim, self.control_dim = cls.state_dim, cls.control_dim
        self.custom_library = library is not None
        lib = cls.library() if library is None else library
        self.library = check_library(lib, self.state_dim, self.control_dim)
        rows = cls.velocity_index if rows is None else rows
        self.rows = tuple(int(r) for r in rows)
        n = self.state_dim
        if not self.rows or len(set(self.rows)) != len(self.rows) or not all(0 <= r < n for r in self.rows):
            raise ValueError(f"rows must be distinct indices in [0, {n}), got {rows!r}")
        if self.space == "force":
            self.row_names = tuple(force_name(cls.states[q].name) for q in cls.position_index)
        else:
            self.row_names = tuple(derivative_name(cls.states[r].name) for r in self.rows)
        self.term_names = tuple(self.library)
        k = len(self.term_names)
        self.weight = nn.Parameter(torch.zeros(len(self.rows), k))
        self.register_buffer("mask", torch.ones(len(self.rows), k))
        self.register_buffer("term_scale", torch.ones(k))
        if terms is not None:
            self.set_terms(terms)

    # -- the active terms ------------------------------------------------------------------------------
    @torch.no_grad()
    def set_terms(self, terms: Mapping[str, Sequence[str]]) -> SymbolicField:
        """Make exactly ``terms`` (``row name -> term names``) active; inactive coefficients become 0.

        Raises:
            ValueError: an unknown row or term name (listing the valid ones).
        """
        if not isinstance(terms, Mapping):
            raise TypeError(f"terms must be a dict of row name -> term names, got {type(terms).__name__}")
        mask = torch.zeros_like(self.mask)
        for row, names in terms.items():
            if row not in self.row_names:
                raise ValueError(f"unknown row {row!r}; valid: {list(self.row_names)}")
            if isinstance(names, str):
                raise TypeError(f"terms[{row!r}] must be a list of term names, got the string {names!r}")
            for name in names:
                if name not in self.term_names:
                    raise ValueError(f"unknown term {name!r} in row {row!r}; valid: {list(self.term_names)}")
                mask[self.row_names.index(row), self.term_names.index(name)] = 1.0
        self.mask.copy_(mask)
        self.weight.mul_(mask.to(self.weight.dtype))
        return self

    def active_terms(self) -> dict[str, list[str]]:
        """``row name -> names of its active terms`` (library order)."""
        return {
            row: [t for k, t in enumerate(self.term_names) if self.mask[i, k] > 0]
            for i, row in enumerate(self.row_names)
        }

    @torch.no_grad()
    def set_coefficients(self, coefficients: torch.Tensor) -> SymbolicField:
        """Set all coefficients ``xi [len(rows), K]`` in physical units (masked entries are ignored)."""
        c = torch.as_tensor(coefficients, dtype=self.weight.dtype)
        if c.shape != self.weight.shape:
            raise ValueError(f"coefficients must have shape {tuple(self.weight.shape)}, got {tuple(c.shape)}")
        self.weight.copy_(c * self.term_scale.to(c.dtype) * self.mask.to(c.dtype))
        return self

    def coefficient_matrix(self) -> torch.Tensor:
        """The coefficients ``xi [len(rows), K]`` in physical units (0 where inactive), with gradients."""
        return self.weight * self.mask / self.term_scale

    # -- the field -------------------------------------------------------------------------------------
    def terms(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """The library's terms at ``x [..., n]``, ``u [..., m]``: ``[..., K]``."""
        return evaluate_library(self.library, x, u)

    def forward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        check_state_control(x, u, self.state_dim, self.control_dim)
        cols = torch.nonzero(self.mask.any(0)).flatten().tolist()  # only the active terms are evaluated
        if not cols:
            return x.new_zeros((*x.shape[:-1], len(self.rows)))
        active = {self.term_names[k]: self.library[self.term_names[k]] for k in cols}
        return evaluate_library(active, x, u) @ self.coefficient_matrix()[:, cols].to(x.dtype).t()

    @torch.no_grad()
    def fit_normalization(self, states: torch.Tensor, controls: torch.Tensor, dt: float) -> SymbolicField:
        """Set ``term_scale`` to the spread of each term over ``states [N, T+1, n]``, ``controls [N, T, m]``,
        keeping the physical coefficients (the stored weights are rescaled)."""
        x = torch.as_tensor(states)[:, :-1]
        u = torch.as_tensor(controls).to(x.dtype)
        theta = self.terms(x.reshape(-1, self.state_dim), u.reshape(-1, self.control_dim))
        theta = theta[torch.isfinite(theta).all(-1)]
        if theta.shape[0] < 2:
            return self
        coef = self.coefficient_matrix().detach()
        scale = theta.pow(2).mean(0).sqrt().clamp_min(1e-6).to(self.term_scale.dtype)
        self.term_scale.copy_(scale)
        self.set_coefficients(coef)
        return self

    # -- reading it ------------------------------------------------------------------------------------
    def coefficients(self) -> dict[str, dict[str, float]]:
        """``row name -> {term name: coefficient}`` of the active terms, physical units."""
        xi = self.coefficient_matrix().detach().double()
        return {
            row: {t: float(xi[i, k]) for k, t in enumerate(self.term_names) if self.mask[i, k] > 0}
            for i, row in enumerate(self.row_names)
        }

    def equations(self, digits: int = 4) -> dict[str, str]:
        """``row name -> "c1*term1 + c2*term2 ..."`` (``"0"`` for a row without terms), ``digits`` significant."""
        return {row: format_sum(c, digits) for row, c in self.coefficients().items()}

    def extra_repr(self) -> str:
        active = int(self.mask.sum())
        return (f"system={self.system.__name__}, rows={self.rows}, space={self.space!r}, "
                f"terms={len(self.term_names)}, active={active}")


def format_sum(coefficients: Mapping[str, float], digits: int = 4) -> str:
    """``{"a": -0.31, "b": 2.0} -> "-0.31*a + 2*b"``; ``"0"`` when empty."""
    parts = []
    for name, c in coefficients.items():
        mag = f"{abs(c):.{digits}g}"
        sign = "-" if c < 0 else "+"
        parts.append((sign, f"{mag}*{name}"))
    if not parts:
        return "0"
    first_sign, first = parts[0]
    text = ("-" if first_sign == "-" else "") + first
    return text + "".join(f" {s} {p}" for s, p in parts[1:])
