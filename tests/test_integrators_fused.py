"""Tests for physwm.integrators.fused: the column-splitting graph pass, the compiled rollout and its eager fallback.

Only one test compiles with inductor (a tiny Euler chunk, a few seconds on a cold cache); the graph
pass is checked on make_fx graphs, which needs no compiler.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.fx.experimental.proxy_tensor import make_fx

from physwm import RK4, CartPole, CartPoleParams, Euler, SemiImplicitEuler, VectorField
from physwm.integrators.fused import FusedRollout, _chunk_function, compile_available, compiled_rollout
from physwm.integrators.graph_pass import inline_small_matmuls, split_state_columns

FRICTION = CartPoleParams(cart_viscous=0.3, cart_coulomb=0.2, pole_damping=0.01)


def _inputs(batch=5, horizon=7, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = (torch.rand(batch, 4, generator=g, dtype=dtype) - 0.5) * 0.4
    u = (torch.rand(batch, horizon, 1, generator=g, dtype=dtype) - 0.5) * 20
    return x0, u


class _MLPField(VectorField):
    """A learned-style field (matmuls, no stacking): the pass must leave its numbers unchanged."""

    state_dim, control_dim = 4, 1
    position_index, velocity_index = (0, 2), (1, 3)

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 4))

    def forward(self, x, u):
        return self.net(torch.cat((x, u), dim=-1))


def _traced_chunk(field, integrator, steps=3, batch=5):
    x0, u = _inputs(batch, steps)
    args = (x0.t().contiguous(), u.permute(1, 2, 0).contiguous(), torch.empty(steps, 4, batch))
    from torch._inductor.decomposition import select_decomp_table

    gm = make_fx(_chunk_function(field, integrator, 0.02, steps), decomposition_table=select_decomp_table())(*args)
    return gm, args


@pytest.mark.parametrize("integrator", [Euler(), RK4(substeps=2), SemiImplicitEuler()], ids=repr)
@pytest.mark.parametrize("field", [CartPole(), CartPole(FRICTION), _MLPField()], ids=["cartpole", "friction", "mlp"])
def test_split_state_columns_keeps_every_number(field, integrator):
    gm, args = _traced_chunk(field, integrator)
    before_out = torch.empty_like(args[2])
    before_last = gm(args[0], args[1], before_out)
    rewrites = split_state_columns(gm.graph)
    gm.recompile()
    after_out = torch.empty_like(args[2])
    after_last = gm(args[0], args[1], after_out)
    # Same operations on the same values, element by element: bit-identical results.
    assert torch.equal(before_out, after_out)
    assert torch.equal(before_last, after_last)
    # Where the field stacks its output and the integrator combines stacked states, the pass splits them.
    if isinstance(field, CartPole) and not isinstance(integrator, SemiImplicitEuler):
        assert rewrites > 0


@pytest.mark.parametrize("integrator", [Euler(), RK4()], ids=repr)
def test_split_state_columns_leaves_no_interleaved_intermediates(integrator):
    gm, _ = _traced_chunk(CartPole(), integrator, steps=3)
    cats_before = [n for n in gm.graph.nodes if n.target is torch.ops.aten.cat.default]
    assert len(cats_before) >= 3  # the field's stack, once per step (and RK4 stage), plus the output
    split_state_columns(gm.graph)
    cats = [n for n in gm.graph.nodes if n.target is torch.ops.aten.cat.default]
    # Only the output stack (rows of [B = 5]) survives: no interleaved [B, 4] array between two steps.
    assert len(cats) == 1
    assert cats[0].meta["val"].shape[-1] != 4 and cats[0].meta["val"].numel() == 3 * 4 * 5


def test_split_state_columns_broadcasts_size_one_and_scalar_operands():
    def f(x, w, s):
        y = torch.stack((x[..., 0] * 2, x[..., 1].sin()), dim=-1)  # [B, 2]
        z = (y * w + s).cos()  # w: [B, 1] broadcast along the columns; s: 0-dim
        return z[..., 1] - z[..., 0], z

    args = (torch.randn(6, 2), torch.randn(6, 1), torch.tensor(0.3))
    gm = make_fx(f)(*args)
    expected = gm(*args)
    assert split_state_columns(gm.graph) > 0
    gm.recompile()
    got = gm(*args)
    assert all(torch.equal(a, b) for a, b in zip(expected, got))


@pytest.mark.parametrize("integrator", [Euler(), RK4()], ids=repr)
def test_inline_small_matmuls_replaces_every_layer_product_to_round_off(integrator):
    gm, args = _traced_chunk(_MLPField(), integrator, steps=3)
    products = (torch.ops.aten.mm.default, torch.ops.aten.addmm.default)
    expected_out = torch.empty_like(args[2])
    expected_last = gm(args[0], args[1], expected_out)
    n_products = sum(n.target in products for n in gm.graph.nodes)
    assert n_products >= 2 * 3 * (4 if isinstance(integrator, RK4) else 1)  # two layers per field evaluation
    assert inline_small_matmuls(gm.graph) == n_products
    assert not any(n.target in products for n in gm.graph.nodes)
    gm.recompile()
    out = torch.empty_like(args[2])
    last = gm(args[0], args[1], out)
    torch.testing.assert_close(out, expected_out, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(last, expected_last, rtol=1e-6, atol=1e-6)


def test_inline_small_matmuls_leaves_large_products_alone():
    def f(a, b):
        return a @ b

    gm = make_fx(f)(torch.randn(3, 80), torch.randn(80, 5))  # inner size 80 > the limit
    assert inline_small_matmuls(gm.graph) == 0
    gm2 = make_fx(f)(torch.randn(3, 8), torch.randn(8, 5))
    assert inline_small_matmuls(gm2.graph, limit=4) == 0 and inline_small_matmuls(gm2.graph) == 1


def test_eager_fallback_on_failing_compiler_warns_and_matches_rollout():
    def broken_backend(gm, example_inputs):
        raise RuntimeError("no compiler here")

    field, euler = CartPole(FRICTION), Euler()
    x0, u = _inputs(batch=4, horizon=6)
    rollout = FusedRollout(field, euler, 0.02, chunk=4, backend=broken_backend)
    with pytest.warns(RuntimeWarning, match="compiling the rollout of CartPole .* failed .*running it eagerly"):
        states = rollout(x0, u)
    assert not rollout.compiled
    expected = euler.rollout(field, x0, u, 0.02)
    assert states.shape == (4, 7, 4) and states.dtype == torch.float32
    torch.testing.assert_close(states, expected, rtol=1e-6, atol=1e-6)
    # Once fallen back it stays eager, silently.
    torch.testing.assert_close(rollout(x0, u), expected, rtol=1e-6, atol=1e-6)


def test_no_fallback_raises():
    def broken_backend(gm, example_inputs):
        raise RuntimeError("no compiler here")

    rollout = FusedRollout(CartPole(), Euler(), 0.02, chunk=2, backend=broken_backend, fallback=False)
    x0, u = _inputs(batch=2, horizon=2)
    with pytest.raises(RuntimeError, match="compiling the rollout of CartPole .* failed"):
        rollout(x0, u)


def test_missing_compiler_runs_eagerly_and_silently(monkeypatch):
    import physwm.integrators.compiled as compiled

    monkeypatch.setattr(compiled, "compile_available", lambda device="cpu": False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing failed, the numbers are the same: no warning
        rollout = FusedRollout(CartPole(), RK4(), 0.02, chunk=3)
    assert not rollout.compiled
    x0, u = _inputs(batch=3, horizon=5, dtype=torch.float64)
    states = rollout(x0, u)
    assert states.dtype == torch.float64
    torch.testing.assert_close(states, RK4().rollout(CartPole(), x0, u, 0.02), rtol=1e-12, atol=1e-12)


def test_dynamo_traces_the_chunk_without_graph_breaks():
    # backend="eager": dynamo captures the whole chunk as one graph (fullgraph=True) with no C++ compile.
    field, rk4 = CartPole(FRICTION), RK4()
    rollout = FusedRollout(field, rk4, 0.02, chunk=2, backend="eager")
    x0, u = _inputs(batch=3, horizon=5)
    states = rollout(x0, u)
    assert rollout.compiled
    torch.testing.assert_close(states, rk4.rollout(field, x0, u, 0.02), rtol=1e-6, atol=1e-6)


@pytest.mark.compiles
@pytest.mark.skipif(not compile_available(), reason="torch.compile's C++ backend needs a C++ compiler")
def test_compiled_rollout_matches_eager_rollout():
    field, euler = CartPole(), Euler()
    rollout = compiled_rollout(field, euler, 0.02, chunk=2)
    x0, u = _inputs(batch=3, horizon=5)  # 5 steps: two whole chunks and a padded one
    with torch.no_grad():
        states = rollout(x0, u)
    assert rollout.compiled, "compilation fell back to eager"
    assert rollout.compile_seconds > 0
    expected = euler.rollout(field, x0, u, 0.02)
    assert states.shape == expected.shape and states.dtype == expected.dtype
    assert torch.equal(states[:, 0], x0)
    # float32 round-off only (vectorised sin/cos may differ from scalar ones in the last bit).
    torch.testing.assert_close(states, expected, rtol=1e-5, atol=1e-6)
    # A second call reuses the compiled kernel and gives the same numbers, also into a reused buffer.
    torch.testing.assert_close(rollout(x0, u), states, rtol=0, atol=0)
    buffer = torch.full_like(states, float("nan")).permute(1, 2, 0).contiguous().permute(2, 0, 1)
    assert rollout(x0, u, out=buffer) is buffer
    torch.testing.assert_close(buffer, states, rtol=0, atol=0)


def test_compiled_rollout_is_cached_per_field_integrator_and_settings():
    field, euler = CartPole(), Euler()
    a = compiled_rollout(field, euler, 0.02, chunk=3, backend="eager")
    assert compiled_rollout(field, euler, 0.02, chunk=3, backend="eager") is a
    assert compiled_rollout(field, euler, 0.02, chunk=4, backend="eager") is not a
    assert compiled_rollout(CartPole(), euler, 0.02, chunk=3, backend="eager") is not a
    assert compiled_rollout(field, Euler(), 0.02, chunk=3, backend="eager") is not a
    assert isinstance(compiled_rollout(field, "rk4", 0.02, chunk=3, backend="eager").integrator, RK4)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="chunk"):
        FusedRollout(CartPole(), Euler(), 0.02, chunk=0, backend="eager")
    with pytest.raises(ValueError, match="dt"):
        FusedRollout(CartPole(), Euler(), -0.02, backend="eager")
    with pytest.raises(TypeError, match="VectorField"):
        FusedRollout(lambda x, u: x, Euler(), 0.02, backend="eager")
    with pytest.raises(ValueError, match="unknown integrator"):
        compiled_rollout(CartPole(), "leapfrog", 0.02)
    rollout = FusedRollout(CartPole(), Euler(), 0.02, chunk=2, backend="eager")
    x0, u = _inputs(batch=2, horizon=3)
    with pytest.raises(ValueError, match="x0 must have shape"):
        rollout(x0[:, :3], u)
    with pytest.raises(ValueError, match="u must have shape"):
        rollout(x0, u[:1])
    u_nan = u.clone()
    u_nan[1, 2, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        rollout(x0, u_nan)


def test_output_buffer_reuse_and_its_errors():
    field, euler = CartPole(), Euler()
    rollout = FusedRollout(field, euler, 0.02, chunk=2, backend="eager")
    x0, u = _inputs(batch=3, horizon=5)
    first = rollout(x0, u)
    # Continue from the last state into the same buffer: x0 may be a view of out.
    second = rollout(first[:, -1], u, out=first)
    assert second is first
    expected = euler.rollout(field, euler.rollout(field, x0, u, 0.02)[:, -1], u, 0.02)
    torch.testing.assert_close(second, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="out must have shape"):
        rollout(x0, u, out=torch.empty(3, 5, 4))
    with pytest.raises(ValueError, match="dtype and device"):
        rollout(x0, u, out=first.double())
    with pytest.raises(ValueError, match="time-major"):
        rollout(x0, u, out=torch.empty(3, 6, 4))


def test_inf_and_overflowing_sums_are_told_apart():
    rollout = FusedRollout(CartPole(), Euler(), 0.02, chunk=2, backend="eager")
    x0, u = _inputs(batch=2, horizon=4)
    u_inf = u.clone()
    u_inf[0, 1, 0] = float("-inf")
    with pytest.raises(ValueError, match="u contains NaN or inf"):
        rollout(x0, u_inf)
    x_inf = x0.clone()
    x_inf[1, 3] = float("inf")
    with pytest.raises(ValueError, match="x0 contains NaN or inf"):
        rollout(x_inf, u)
    # Finite entries whose float32 sum overflows are valid input, not an error.
    huge = torch.full((2, 4, 1), 3e38)
    states = rollout(torch.zeros(2, 4), huge)
    assert states.shape == (2, 5, 4)


@pytest.mark.compiles  # the real compile_available (the suite's default replaces it), though nothing compiles
def test_torch_compile_disable_turns_compiling_off(monkeypatch):
    from physwm.integrators.compiled import CompiledFunction

    monkeypatch.setenv("TORCH_COMPILE_DISABLE", "1")  # torch's own switch (torch.compile then does nothing)
    assert not compile_available()
    fn = CompiledFunction(lambda x: x + 1, "test function")
    assert not fn.compiled and float(fn(torch.zeros(()))) == 1.0
