"""A graph pass for compiled rollouts: element-wise operations on stacked state vectors, split by column.

A field such as CartPole assembles ``dx/dt`` with ``torch.stack(..., dim=-1)`` and the integrator adds
``h * dx/dt`` to the stacked state, so the compiled graph keeps materialising ``[B, n]`` arrays with the
state variables interleaved; inductor's C++ code generator then falls back to scalar code (the loads are
strided). :func:`split_state_columns` rewrites element-wise operations on such stacked tensors into the
same operations on their ``n`` columns (``(a ⊕ b)[..., j] = a[..., j] ⊕ b[..., j]``), so each state
variable lives in its own contiguous vector. It re-associates no arithmetic and changes no operation.

The pass itself uses torch's public FX API. Plugging it into inductor needs inductor's custom-pass hook
(``torch._inductor.custom_graph_pass``, a private API): :func:`column_pass` returns ``None`` where that
hook is missing, and compiled rollouts then compile without the pass (same numbers, slower kernels).
"""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import fx

__all__ = ["split_state_columns", "inline_small_matmuls", "column_pass"]

_aten = torch.ops.aten

# Largest last dimension the column pass splits (state and control dimensions are small).
_MAX_COLUMNS = 32


def _meta(n: Any) -> Any:
    return n.meta.get("val") if isinstance(n, fx.Node) else None


def _last_dim(d: Any, ndim: int) -> bool:
    return isinstance(d, int) and ndim > 0 and (d == -1 or d == ndim - 1)


def split_state_columns(graph: fx.Graph) -> int:
    """Rewrite element-wise ops on stacked tensors ``[..., C]`` into ops on their ``C`` columns.

    Works on an aten-level FX graph whose nodes carry ``meta["val"]`` (inductor's post-grad graphs).
    A value gets a *column form* (a list of ``C`` nodes of shape ``[...]``) when it is

    * ``unsqueeze(a, -1)`` (one column, ``a``) or ``stack(parts, -1)`` (the parts),
    * ``cat(parts, -1)`` of values at least one of which has a column form,
    * an element-wise (``torch.Tag.pointwise``, not random) op of which at least one tensor argument
      has a column form; its other tensor arguments are 0-dim, broadcast along the last dimension
      (size 1) or split by ``select``.

    ``select(v, -1, j)``/``unbind(v, -1)`` of such a value then read the column directly, and any
    other use of it gets the columns stacked back together, so the graph computes exactly the same
    values with exactly the same operations. Dead nodes are removed.

    Args:
        graph: the graph, modified in place.

    Returns:
        The number of uses rewritten (0 if the graph has nothing to split).
    """
    cols: dict[fx.Node, list[fx.Node]] = {}
    from_self: set[fx.Node] = set()  # nodes whose columns are plain selects of the node itself
    keep: set[fx.Node] = set()  # split nodes that stay valid as they are (views, stack, cat)
    rewrites = 0

    def select(n: fx.Node, j: int) -> fx.Node:
        with graph.inserting_after(n):
            s = graph.call_function(_aten.select.int, (n, -1, j))
        s.meta["val"] = _meta(n).select(-1, j)
        return s

    def columns_of(n: Any, c: int) -> list[Any] | None:
        if n in cols:
            return cols[n] if len(cols[n]) == c else None
        v = _meta(n)
        if not isinstance(v, torch.Tensor) or v.ndim == 0 or v.shape[-1] != c or c > _MAX_COLUMNS:
            return None
        cs = [select(n, j) for j in reversed(range(c))][::-1]
        cols[n] = cs
        from_self.add(n)
        return cs

    for node in list(graph.nodes):
        if node.op != "call_function":
            continue
        target, out = node.target, _meta(node)
        if target is _aten.unsqueeze.default:
            a, d = node.args[0], node.args[1]
            va = _meta(a)
            if isinstance(va, torch.Tensor) and (d == -1 or d == va.ndim):
                cols[node] = [a]
                keep.add(node)
        elif target is _aten.stack.default:
            parts = node.args[0]
            d = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
            if isinstance(out, torch.Tensor) and _last_dim(d, out.ndim) and len(parts) <= _MAX_COLUMNS:
                cols[node] = list(parts)
                keep.add(node)
        elif target is _aten.select.int:
            a, d, j = node.args
            va = _meta(a)
            if a in cols and a not in from_self and isinstance(va, torch.Tensor) and _last_dim(d, va.ndim):
                node.replace_all_uses_with(cols[a][j])
                rewrites += 1
        elif target is _aten.unbind.int:
            a = node.args[0]
            d = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
            va = _meta(a)
            if a in cols and a not in from_self and isinstance(va, torch.Tensor) and _last_dim(d, va.ndim):
                for user in list(node.users):
                    if user.op == "call_function" and user.target is operator.getitem:
                        user.replace_all_uses_with(cols[a][user.args[1]])
                        rewrites += 1
        elif target is _aten.cat.default:
            parts = node.args[0]
            d = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
            if not isinstance(out, torch.Tensor) or not _last_dim(d, out.ndim) or out.shape[-1] > _MAX_COLUMNS:
                continue
            if not any(p in cols for p in parts):
                continue
            cs: list[Any] = []
            for p in parts:
                pc = cols.get(p) or columns_of(p, _meta(p).shape[-1])
                if pc is None:
                    break
                cs.extend(pc)
            else:
                cols[node] = cs
                keep.add(node)
        elif (
            isinstance(target, torch._ops.OpOverload)
            and torch.Tag.pointwise in target.tags
            and torch.Tag.nondeterministic_seeded not in target.tags
        ):
            if not isinstance(out, torch.Tensor) or out.ndim == 0 or out.shape[-1] > _MAX_COLUMNS:
                continue
            if any(isinstance(v, fx.Node) for v in node.kwargs.values()):
                continue
            c = out.shape[-1]
            if not any(isinstance(a, fx.Node) and len(cols.get(a, ())) == c for a in node.args):
                continue
            per_arg: list[list[Any]] = []
            for a in node.args:
                if isinstance(a, (list, tuple)) and any(isinstance(x, fx.Node) for x in a):
                    break
                va = _meta(a)
                if not isinstance(va, torch.Tensor) or va.ndim == 0:
                    per_arg.append([a] * c)
                elif va.shape[-1] == c and (ac := columns_of(a, c)) is not None:
                    per_arg.append(ac)
                elif va.shape[-1] == 1:
                    per_arg.append([select(a, 0)] * c)
                else:
                    break
            else:
                new: list[fx.Node] = []
                with graph.inserting_after(node):
                    for j in reversed(range(c)):
                        n = graph.call_function(target, tuple(pa[j] for pa in per_arg), dict(node.kwargs))
                        n.meta["val"] = out.select(-1, j)
                        new.append(n)
                cols[node] = new[::-1]

    # Every other use of a split value gets the columns stacked back (exactly the original value).
    order = {n: i for i, n in enumerate(graph.nodes)}
    for node, cs in cols.items():
        if node in from_self or node in keep or not node.users:
            continue
        first_user = min(node.users, key=order.__getitem__)
        with graph.inserting_before(first_user):
            parts = []
            for c in cs:
                p = graph.call_function(_aten.unsqueeze.default, (c, -1))
                p.meta["val"] = _meta(c).unsqueeze(-1)
                parts.append(p)
            stacked = graph.call_function(_aten.cat.default, (parts, -1))
        stacked.meta["val"] = _meta(node)
        node.replace_all_uses_with(stacked)
    graph.eliminate_dead_code()
    graph.lint()
    return rewrites


#: Largest inner and output size of a matrix product :func:`inline_small_matmuls` rewrites.
SMALL_MATMUL = 64


def inline_small_matmuls(graph: fx.Graph, limit: int = SMALL_MATMUL) -> int:
    """Rewrite small matrix products as element-wise products and a sum, so inductor fuses them into its loops.

    ``mm(a [M, K], b [K, N])`` becomes ``sum(a[:, :, None] * b, 1)`` and ``addmm(c, a, b)`` (``alpha = beta =
    1``) that plus ``c``, when ``K <= limit`` and ``N <= limit`` (any ``M``). A learned field's layers (a few
    dozen units) are such products: inductor would call a BLAS routine for each of them, once per layer,
    field evaluation and step, and at the small batches of a gradient planner (a handful of rows) those
    calls cost far more than their arithmetic. Summation order differs from BLAS's: the results agree to
    float round-off.

    Args:
        graph: an aten-level FX graph whose nodes carry ``meta["val"]`` (inductor's post-grad graphs),
            modified in place.
        limit: largest ``K`` and ``N`` rewritten.

    Returns:
        The number of products rewritten.
    """
    rewrites = 0
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target not in (_aten.mm.default, _aten.addmm.default):
            continue
        if node.target is _aten.addmm.default:
            if node.kwargs.get("alpha", 1) != 1 or node.kwargs.get("beta", 1) != 1 or len(node.args) != 3:
                continue
            bias, a, b = node.args
        else:
            bias, (a, b) = None, node.args
        va, vb, out = _meta(a), _meta(b), _meta(node)
        if not all(isinstance(v, torch.Tensor) for v in (va, vb, out)) or va.ndim != 2 or vb.ndim != 2:
            continue
        if not (isinstance(vb.shape[0], int) and isinstance(vb.shape[1], int)):
            continue
        if vb.shape[0] > limit or vb.shape[1] > limit or va.dtype != vb.dtype:
            continue
        with graph.inserting_before(node):
            a3 = graph.call_function(_aten.unsqueeze.default, (a, 2))
            a3.meta["val"] = va.unsqueeze(2)
            prod = graph.call_function(_aten.mul.Tensor, (a3, b))
            # metadata from ``a``'s and the output's fake tensors only: ``b`` may belong to another fake mode
            prod.meta["val"] = va.new_empty((va.shape[0], vb.shape[0], vb.shape[1]))
            new = graph.call_function(_aten.sum.dim_IntList, (prod, [1]))
            new.meta["val"] = out.new_empty(out.shape)
            if bias is not None:
                summed = new
                new = graph.call_function(_aten.add.Tensor, (summed, bias))
                new.meta["val"] = out
        node.replace_all_uses_with(new)
        graph.erase_node(node)
        rewrites += 1
    if rewrites:
        graph.lint()
    return rewrites


def column_pass() -> Any:
    """:func:`split_state_columns` and then :func:`inline_small_matmuls` as inductor's ``CustomGraphPass``
    (with a uuid, so compiled code is cached on disk), or ``None`` if this torch has no custom-pass hook."""
    try:
        from torch._inductor.custom_graph_pass import CustomGraphPass, get_hash_for_files
    except ImportError:  # an older or stripped torch: compile without the pass
        return None

    class _SplitStateColumns(CustomGraphPass):
        def __call__(self, graph: fx.Graph) -> None:
            split_state_columns(graph)
            inline_small_matmuls(graph)

        def uuid(self) -> Any:
            return get_hash_for_files((__file__,))

    return _SplitStateColumns()
