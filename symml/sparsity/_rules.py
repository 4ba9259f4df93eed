"""The built-in sparsity rules, one line per primitive at the bottom."""

from __future__ import annotations

import collections
import itertools
import math
from collections.abc import Callable, Sequence

import jax
import jax.extend.core.primitives as prims
import jax.lax as lax
import numpy as np
import scipy.sparse as ssp

from .._errors import SparsityError
from .._jaxpr import find_primitive
from ._deps import (
    DependencySets,
    _outer_pairs,
    _Sets,
    _take_range,
    _vstack_sets,
    _with_pairs,
    index_matrix,
    left_multiply,
    take,
    union,
    with_cross_pairs,
    with_self_pairs,
)
from ._interpreter import RuleContext, register_sparsity_rule

Deps = DependencySets | None


# --------------------------------------------------------------------- helpers


def _iota(shape: Sequence[int]) -> np.ndarray:
    return np.arange(math.prod(shape), dtype=np.int64).reshape(tuple(shape))


class _IndexMap:
    """A structural map: output element `k` copies input element `idx[k]` (none
    where `idx[k] < 0`). Maps depend on shapes and parameters only, so they are
    built once per signature and cached (`_cached_map`); a map that is a run of
    consecutive indices (`start` is set) is applied as a slice of the sets."""

    __slots__ = ("idx", "start", "nonneg")

    def __init__(self, idx: np.ndarray):
        idx = np.ascontiguousarray(idx, dtype=np.int64).ravel()
        idx.flags.writeable = False
        self.idx = idx
        self.nonneg = not len(idx) or bool(idx.min() >= 0)
        self.start: int | None = None
        if not len(idx):
            self.start = 0
        elif idx[0] >= 0 and idx[-1] - idx[0] == len(idx) - 1:
            first = int(idx[0])
            if np.array_equal(idx, np.arange(first, first + len(idx))):
                self.start = first

    def apply(self, d: Deps) -> Deps:
        if d is None:
            return None
        if self.start is not None:
            return _take_range(d, self.start, self.start + len(self.idx))
        return take(d, self.idx, nonneg=self.nonneg)


_MAPS: collections.OrderedDict = collections.OrderedDict()
_MAPS_BYTES = [0]
_MAPS_MAX_BYTES = 64 * 2**20


def _cached_map(builder: Callable[..., np.ndarray], *key) -> _IndexMap:
    """`_IndexMap(builder(*key))`, built once per `(builder, key)`; `key` holds
    shapes and parameters (hashable tuples). The least recently used maps are
    dropped beyond 64 MB of indices."""
    full = (builder, *key)
    index_map = _MAPS.get(full)
    if index_map is not None:
        _MAPS.move_to_end(full)
        return index_map
    index_map = _IndexMap(builder(*key))
    _MAPS[full] = index_map
    _MAPS_BYTES[0] += index_map.idx.nbytes
    while _MAPS_BYTES[0] > _MAPS_MAX_BYTES and len(_MAPS) > 1:
        _, dropped = _MAPS.popitem(last=False)
        _MAPS_BYTES[0] -= dropped.idx.nbytes
    return index_map


def _hashable(value):
    """Parameters as cache keys (lists inside become tuples)."""
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    return value


def _broadcast_map(shape: tuple[int, ...], out_shape: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(_iota(shape), out_shape)


def _broadcast(d: Deps, shape: tuple[int, ...], out_shape: tuple[int, ...]) -> Deps:
    if d is None or shape == out_shape:
        return d
    return _cached_map(_broadcast_map, shape, out_shape).apply(d)


def _broadcast_inputs(ctx: RuleContext) -> list[Deps]:
    deps = ctx.deps
    size = math.prod(ctx.eqn.outvars[0].aval.shape)
    if all(d is None or d.size == size for d in deps):
        return deps  # an input of the output's size has the output's shape
    out = ctx.out_shape(0)
    return [_broadcast(d, ctx.in_shape(i), out) for i, d in enumerate(deps)]


def _dense(d: Deps, out_size: int) -> Deps:
    """Every output element depends on every set of `d`."""
    if d is None:
        return None
    hess = None if d._hess is None else d._hess.repeated(out_size)
    return d._new(d._jac.repeated(out_size), hess)


def _bilinear(
    ctx: RuleContext,
    out_size: int,
    out_idx: np.ndarray,
    a_idx: np.ndarray,
    b_idx: np.ndarray,
    a_nonzero: np.ndarray | None,
    b_nonzero: np.ndarray | None,
) -> Deps:
    """The sets of `out[o_t] += a[ia_t] * b[ib_t]` over terms `t`. A term is
    dropped when a constant factor is zero there (`*_nonzero` masks over
    terms)."""
    a, b = ctx.deps[0], ctx.deps[1]
    keep = np.ones(len(out_idx), dtype=bool)
    if a_nonzero is not None:
        keep &= a_nonzero
    if b_nonzero is not None:
        keep &= b_nonzero
    out_idx, a_idx, b_idx = out_idx[keep], a_idx[keep], b_idx[keep]
    parts = []
    if a is not None:
        parts.append(left_multiply(index_matrix(out_idx, a_idx, (out_size, a.size)), a))
    if b is not None:
        parts.append(left_multiply(index_matrix(out_idx, b_idx, (out_size, b.size)), b))
    out = union(parts)
    if out is not None and ctx.hessian and a is not None and b is not None:
        out = _with_pairs(
            out, _outer_pairs(a._jac, a_idx, b._jac, b_idx, out_idx, out_size)
        )
    return out


def _nonzero_mask(value: np.ndarray | None, idx: np.ndarray) -> np.ndarray | None:
    if value is None:
        return None
    return np.asarray(value).ravel()[idx] != 0


# ------------------------------------------------------------ elementwise rules


def _zero_rule(ctx: RuleContext) -> list[Deps]:
    return [None] * len(ctx.eqn.outvars)


def _linear_rule(ctx: RuleContext) -> list[Deps]:
    return [union(_broadcast_inputs(ctx))]


def _nonlinear_rule(ctx: RuleContext) -> list[Deps]:
    return [with_self_pairs(union(_broadcast_inputs(ctx)))]


def _identity_rule(ctx: RuleContext) -> list[Deps]:
    return [ctx.deps[0]]


def _mul_rule(ctx: RuleContext) -> list[Deps]:
    a, b = _broadcast_inputs(ctx)
    return [with_cross_pairs(union([a, b]), a, b)]


def _div_rule(ctx: RuleContext) -> list[Deps]:
    a, b = _broadcast_inputs(ctx)
    out = with_cross_pairs(union([a, b]), a, b)
    if b is not None and ctx.hessian:
        # `1 / b` is nonlinear in `b` alone too.
        out = union([out, with_self_pairs(b)])
    return [out]


def _integer_pow_rule(ctx: RuleContext) -> list[Deps]:
    y = ctx.params["y"]
    if y == 0:
        return [None]
    if y == 1:
        return [ctx.deps[0]]
    return [with_self_pairs(ctx.deps[0])]


def _select_n_rule(ctx: RuleContext) -> list[Deps]:
    out = ctx.out_shape(0)
    cases = [_broadcast(d, ctx.in_shape(i), out) for i, d in enumerate(ctx.deps)][1:]
    pred = ctx.value(0)
    if pred is None:
        return [union(cases)]
    pred = np.broadcast_to(pred.astype(np.int64), out).ravel()
    iota = np.arange(len(pred))
    return [
        union([take(c, np.where(pred == k, iota, -1)) for k, c in enumerate(cases)])
    ]


# ------------------------------------------------------------ structural rules


def _index_rule(builder: Callable[..., np.ndarray], *names: str):
    """A rule for an op copying, for each output element, one input element:
    `builder(in_shape, *params)` (the parameters `names`) gives its flat
    index, or -1 for none."""

    def rule(ctx: RuleContext) -> list[Deps]:
        params, shape = ctx.params, ctx.in_shape(0)
        key = tuple(params[name] for name in names)
        try:
            index_map = _cached_map(builder, shape, *key)
        except TypeError:  # a list among the parameters
            index_map = _cached_map(builder, shape, *_hashable(key))
        return [index_map.apply(ctx.deps[0])]

    return rule


def _transpose_map(in_shape, permutation) -> np.ndarray:
    return _iota(in_shape).transpose(permutation)


def _broadcast_in_dim_map(in_shape, shape, broadcast_dimensions) -> np.ndarray:
    expanded = [1] * len(shape)
    for i, d in enumerate(broadcast_dimensions):
        expanded[d] = in_shape[i]
    return np.broadcast_to(_iota(in_shape).reshape(expanded), shape)


def _slice_map(in_shape, start_indices, limit_indices, strides) -> np.ndarray:
    strides = strides or (1,) * len(start_indices)
    return _iota(in_shape)[
        tuple(
            slice(s, e, st)
            for s, e, st in zip(start_indices, limit_indices, strides, strict=True)
        )
    ]


def _rev_map(in_shape, dimensions) -> np.ndarray:
    return np.flip(_iota(in_shape), axis=tuple(dimensions))


def _broadcast_in_dim_rule(ctx: RuleContext) -> list[Deps]:
    if ctx.in_shape(0) == ctx.out_shape(0):
        return [ctx.deps[0]]
    p = ctx.params
    key = (_hashable(p["shape"]), _hashable(p["broadcast_dimensions"]))
    bmap = _cached_map(_broadcast_in_dim_map, ctx.in_shape(0), *key)
    return [bmap.apply(ctx.deps[0])]


def _vstack(deps: Sequence[Deps], sizes: Sequence[int], n: int, hessian: bool) -> Deps:
    """The sets of several arrays, stacked (flattened, in order)."""
    if all(d is None for d in deps):
        return None
    shift = next(d for d in deps if d is not None)._jac.shift
    jac = _vstack_sets(
        [
            d._jac if d is not None else _Sets.empty(s, shift)
            for d, s in zip(deps, sizes, strict=True)
        ]
    )
    hess = None
    if hessian:
        hess = _vstack_sets(
            [
                d._hess if d is not None else _Sets.empty(s, 2 * shift)
                for d, s in zip(deps, sizes, strict=True)
            ]
        )
    return DependencySets(jac, hess, _n=n)


def _stacked(ctx: RuleContext) -> Deps:
    """The sets of all inputs, stacked (flattened, in order)."""
    sizes = [math.prod(ctx.in_shape(i)) for i in range(len(ctx.deps))]
    return _vstack(ctx.deps, sizes, ctx.n, ctx.hessian)


def _blocks(shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
    """The flat indices of each input in the inputs stacked (flattened)."""
    blocks, offset = [], 0
    for shape in shapes:
        blocks.append(_iota(shape) + offset)
        offset += math.prod(shape)
    return blocks


def _concatenate_map(shapes, dimension) -> np.ndarray:
    return np.concatenate(_blocks(shapes), axis=dimension)


def _in_shapes(ctx: RuleContext) -> tuple[tuple[int, ...], ...]:
    return tuple(ctx.in_shape(i) for i in range(len(ctx.deps)))


def _concatenate_rule(ctx: RuleContext) -> list[Deps]:
    perm = _cached_map(_concatenate_map, _in_shapes(ctx), ctx.params["dimension"])
    return [perm.apply(_stacked(ctx))]


def _split_rule(ctx: RuleContext) -> list[Deps]:
    axis = ctx.params["axis"]
    iota = _iota(ctx.in_shape(0))
    bounds = np.cumsum([0, *ctx.params["sizes"]])
    outs = []
    for lo, hi in itertools.pairwise(bounds):
        sl = [slice(None)] * iota.ndim
        sl[axis] = slice(int(lo), int(hi))
        outs.append(take(ctx.deps[0], iota[tuple(sl)].ravel()))
    return outs


def _stack_map(shapes, axis) -> np.ndarray:
    return np.stack(_blocks(shapes), axis=axis)


def _stack_rule(ctx: RuleContext) -> list[Deps]:
    perm = _cached_map(_stack_map, _in_shapes(ctx), ctx.params["axis"])
    return [perm.apply(_stacked(ctx))]


def _unstack_rule(ctx: RuleContext) -> list[Deps]:
    lines = np.moveaxis(_iota(ctx.in_shape(0)), ctx.params["axis"], 0)
    return [take(ctx.deps[0], line.ravel()) for line in lines]


def _tile_rule(ctx: RuleContext) -> list[Deps]:
    return [
        take(ctx.deps[0], np.tile(_iota(ctx.in_shape(0)), ctx.params["reps"]).ravel())
    ]


def _multi_identity_rule(ctx: RuleContext) -> list[Deps]:
    return list(ctx.deps)


def _pad_rule(ctx: RuleContext) -> list[Deps]:
    idx = _iota(ctx.in_shape(0))
    for axis, (lo, hi, interior) in enumerate(ctx.params["padding_config"]):
        lo, hi, interior = int(lo), int(hi), int(interior)
        if interior > 0:
            length = idx.shape[axis]
            new_shape = list(idx.shape)
            new_shape[axis] = length + (length - 1) * interior if length else 0
            spread = np.full(new_shape, -1, dtype=np.int64)
            sl = [slice(None)] * idx.ndim
            sl[axis] = slice(None, None, interior + 1)
            spread[tuple(sl)] = idx
            idx = spread
        widths = [(0, 0)] * idx.ndim
        widths[axis] = (max(lo, 0), max(hi, 0))
        idx = np.pad(idx, widths, constant_values=-1)
        sl = [slice(None)] * idx.ndim
        sl[axis] = slice(max(-lo, 0), idx.shape[axis] - max(-hi, 0))
        idx = idx[tuple(sl)]
    idx = idx.ravel()
    out = take(ctx.deps[0], idx)
    if ctx.deps[1] is not None:
        out = union([out, take(ctx.deps[1], np.where(idx < 0, 0, -1))])
    return [out]


def _window_matrix(out_len: int, in_len: int, start: int | None) -> ssp.csr_matrix:
    """1D map of a window of length `out_len` into `in_len`: at `start` when it
    is known (clamped as `lax.dynamic_slice` does), else at any start."""
    starts = (
        [min(max(int(start), 0), in_len - out_len)]
        if start is not None
        else range(in_len - out_len + 1)
    )
    rows = np.concatenate([np.arange(out_len)] * len(starts))
    cols = np.concatenate([np.arange(out_len) + s for s in starts])
    return index_matrix(rows, cols, (out_len, in_len))


def _kron_all(mats: Sequence[ssp.csr_matrix]) -> ssp.csr_matrix:
    out = ssp.csr_matrix(np.ones((1, 1), dtype=bool))
    for m in mats:
        out = ssp.kron(out, m, format="csr")
    return out.astype(bool)


def _start_values(ctx: RuleContext, first: int) -> list[int | None]:
    out = []
    for i in range(first, len(ctx.eqn.invars)):
        v = ctx.value(i)
        out.append(None if v is None else int(v))
    return out


def _dynamic_slice_rule(ctx: RuleContext) -> list[Deps]:
    starts = _start_values(ctx, 1)
    mats = [
        _window_matrix(o, i, s)
        for o, i, s in zip(ctx.out_shape(0), ctx.in_shape(0), starts, strict=True)
    ]
    return [left_multiply(_kron_all(mats), ctx.deps[0])]


def _dynamic_update_slice_rule(ctx: RuleContext) -> list[Deps]:
    starts = _start_values(ctx, 2)
    shape, upd_shape = ctx.in_shape(0), ctx.in_shape(1)
    mats = [
        _window_matrix(u, s, st).T.tocsr()
        for u, s, st in zip(upd_shape, shape, starts, strict=True)
    ]
    scatter = _kron_all(mats)
    operand = ctx.deps[0]
    if all(s is not None for s in starts):
        covered = np.asarray(scatter.sum(axis=1)).ravel() > 0
        operand = take(operand, np.where(covered, -1, np.arange(len(covered))))
    return [union([operand, left_multiply(scatter, ctx.deps[1])])]


def _gather_rule(ctx: RuleContext) -> list[Deps]:
    indices = ctx.value(1)
    out_size = math.prod(ctx.out_shape(0))
    if indices is None:
        return [_dense(ctx.deps[0], out_size)]
    params = dict(ctx.params)
    params["fill_value"] = -1
    with jax.ensure_compile_time_eval():
        idx = prims.gather_p.bind(_iota(ctx.in_shape(0)), indices, **params)
    idx = np.asarray(idx).ravel()
    return [take(ctx.deps[0], np.where(idx < 0, -1, idx))]


def _scatter_targets(ctx: RuleContext) -> np.ndarray | None:
    """For each update element, the flat operand index it lands on (-1 when
    dropped), via the gather that transposes the scatter."""
    indices = ctx.value(1)
    if indices is None:
        return None
    dnums = ctx.params["dimension_numbers"]
    operand_shape, updates_shape = ctx.in_shape(0), ctx.in_shape(2)
    gather_dnums = lax.GatherDimensionNumbers(
        offset_dims=dnums.update_window_dims,
        collapsed_slice_dims=dnums.inserted_window_dims,
        start_index_map=dnums.scatter_dims_to_operand_dims,
        operand_batching_dims=dnums.operand_batching_dims,
        start_indices_batching_dims=dnums.scatter_indices_batching_dims,
    )
    slice_sizes, pos = [], 0
    for i in range(len(operand_shape)):
        if i in dnums.inserted_window_dims or i in dnums.operand_batching_dims:
            slice_sizes.append(1)
        else:
            slice_sizes.append(updates_shape[dnums.update_window_dims[pos]])
            pos += 1
    with jax.ensure_compile_time_eval():
        targets = lax.gather(
            _iota(operand_shape),
            indices,
            dimension_numbers=gather_dnums,
            slice_sizes=tuple(slice_sizes),
            mode=ctx.params["mode"],
            fill_value=-1,
        )
    targets = np.asarray(targets)
    if targets.shape != tuple(updates_shape):
        raise SparsityError(
            f"Cannot map the updates of `{ctx.eqn.primitive.name}` (shape "
            f"{tuple(updates_shape)}) to the operand; register a specialised rule "
            "with `symml.sparsity.register_sparsity_rule`."
        )
    return targets.ravel()


def _scatter_rule(overwrite: bool, nonlinear: bool):
    def rule(ctx: RuleContext) -> list[Deps]:
        operand, updates = ctx.deps[0], ctx.deps[2]
        out_size = math.prod(ctx.out_shape(0))
        targets = _scatter_targets(ctx)
        if targets is None:
            out = union([operand, _dense(updates, out_size)])
        else:
            valid = targets >= 0
            scatter = index_matrix(
                targets[valid],
                np.flatnonzero(valid),
                (out_size, len(targets)),
            )
            if overwrite:
                hit = np.zeros(out_size, dtype=bool)
                hit[targets[valid]] = True
                operand = take(operand, np.where(hit, -1, np.arange(out_size)))
            out = union([operand, left_multiply(scatter, updates)])
        if nonlinear:
            out = with_self_pairs(out)
        return [out]

    return rule


def _reduce_matrix(shape: tuple[int, ...], axes: Sequence[int]) -> ssp.csr_matrix:
    kept = [d for d in range(len(shape)) if d not in axes]
    out_shape = [shape[d] for d in kept]
    expanded = [shape[d] if d in kept else 1 for d in range(len(shape))]
    out_idx = np.broadcast_to(_iota(out_shape).reshape(expanded), shape).ravel()
    size = math.prod(shape)
    return index_matrix(out_idx, np.arange(size), (math.prod(out_shape), size))


def _reduce_rule(nonlinear: bool):
    def rule(ctx: RuleContext) -> list[Deps]:
        mat = _reduce_matrix(ctx.in_shape(0), ctx.params["axes"])
        out = left_multiply(mat, ctx.deps[0])
        return [with_self_pairs(out) if nonlinear else out]

    return rule


def _line_matrix(shape: tuple[int, ...], axis: int, kind: str) -> ssp.csr_matrix:
    """Along `axis`, output `i` depends on input `j` for `j <= i` ("lower"),
    `j >= i` ("upper") or every `j` ("dense")."""
    length = shape[axis]
    lines = np.moveaxis(_iota(shape), axis, -1).reshape(-1, length)
    if kind == "lower":
        i, j = np.tril_indices(length)
    elif kind == "upper":
        i, j = np.triu_indices(length)
    else:
        i, j = np.indices((length, length)).reshape(2, -1)
    size = math.prod(shape)
    return index_matrix(lines[:, i].ravel(), lines[:, j].ravel(), (size, size))


def _cumulative_rule(nonlinear: bool):
    def rule(ctx: RuleContext) -> list[Deps]:
        kind = "upper" if ctx.params["reverse"] else "lower"
        mat = _line_matrix(ctx.in_shape(0), ctx.params["axis"], kind)
        out = left_multiply(mat, ctx.deps[0])
        return [with_self_pairs(out) if nonlinear else out]

    return rule


def _sort_rule(ctx: RuleContext) -> list[Deps]:
    mat = _line_matrix(ctx.in_shape(0), ctx.params["dimension"], "dense")
    return [left_multiply(mat, d) for d in ctx.deps]


def _dot_general_rule(ctx: RuleContext) -> list[Deps]:
    (lc, rc), (lb, rb) = ctx.params["dimension_numbers"]
    sa, sb = ctx.in_shape(0), ctx.in_shape(1)
    la = [d for d in range(len(sa)) if d not in lc and d not in lb]
    ra = [d for d in range(len(sb)) if d not in rc and d not in rb]
    nb = math.prod(sa[d] for d in lb)
    ni = math.prod(sa[d] for d in la)
    nj = math.prod(sb[d] for d in ra)
    nk = math.prod(sa[d] for d in lc)
    ia = _iota(sa).transpose([*lb, *la, *lc]).reshape(nb, ni, 1, nk)
    ib = _iota(sb).transpose([*rb, *rc, *ra]).reshape(nb, 1, nk, nj)
    ib = ib.transpose(0, 1, 3, 2)  # (B, 1, J, K)
    full = (nb, ni, nj, nk)
    a_idx = np.broadcast_to(ia, full).ravel()
    b_idx = np.broadcast_to(ib, full).ravel()
    out_idx = np.broadcast_to(_iota((nb, ni, nj))[..., None], full).ravel()
    return [
        _bilinear(
            ctx,
            nb * ni * nj,
            out_idx,
            a_idx,
            b_idx,
            _nonzero_mask(ctx.value(0), a_idx) if ctx.deps[0] is None else None,
            _nonzero_mask(ctx.value(1), b_idx) if ctx.deps[1] is None else None,
        )
    ]


def _conv_rule(ctx: RuleContext) -> list[Deps]:
    p = ctx.params
    if p["batch_group_count"] != 1:
        raise SparsityError(
            "The sparsity rule of `conv_general_dilated` supports "
            f"`batch_group_count=1` only, got {p['batch_group_count']}; register "
            "a specialised rule with `symml.sparsity.register_sparsity_rule`."
        )
    dn = p["dimension_numbers"]
    lhs_spec, rhs_spec, out_spec = dn.lhs_spec, dn.rhs_spec, dn.out_spec
    lhs_shape, rhs_shape, out_shape = ctx.in_shape(0), ctx.in_shape(1), ctx.out_shape()
    # Index arrays in canonical layouts (N, C, S...), (O, I, K...), (N, O, S'...).
    lhs_iota = _iota(lhs_shape).transpose(lhs_spec)
    rhs_iota = _iota(rhs_shape).transpose(rhs_spec)
    out_iota = _iota(out_shape).transpose(out_spec)
    nbatch, cin = lhs_iota.shape[:2]
    cout, cin_g = rhs_iota.shape[:2]
    groups = p["feature_group_count"]
    spatial_out = out_iota.shape[2:]
    kernel = rhs_iota.shape[2:]
    lhs_dil = p["lhs_dilation"] or (1,) * len(kernel)
    rhs_dil = p["rhs_dilation"] or (1,) * len(kernel)
    strides = p["window_strides"]
    padding = p["padding"]
    # Per spatial dim: the input position of output `q`, tap `k`, or -1.
    per_dim = []
    for d in range(len(kernel)):
        q = np.arange(spatial_out[d])[:, None]
        k = np.arange(kernel[d])[None, :]
        pos = q * strides[d] - padding[d][0] + k * rhs_dil[d]
        length = lhs_iota.shape[2 + d]
        ok = (pos >= 0) & (pos <= (length - 1) * lhs_dil[d]) & (pos % lhs_dil[d] == 0)
        per_dim.append(np.where(ok, pos // lhs_dil[d], -1))
    nd = len(kernel)
    # Broadcast to (S'_1..S'_d, K_1..K_d).
    pos_grids = []
    for d, arr in enumerate(per_dim):
        shape = [1] * (2 * nd)
        shape[d], shape[nd + d] = arr.shape
        pos_grids.append(arr.reshape(shape))
    grid_shape = (*spatial_out, *kernel)
    valid = np.ones(grid_shape, dtype=bool)
    for g in pos_grids:
        valid &= g >= 0
    # Channel structure: output channel o reads input channels of its group.
    o = np.arange(cout)
    per_group = cout // groups
    ci = np.arange(cin_g)
    c = (o // per_group)[:, None] * cin_g + ci[None, :]  # (O, I)
    # Full term enumeration over (N, O, I, S', K).
    n_ = np.arange(nbatch).reshape(-1, 1, 1, *([1] * 2 * nd))
    o_ = o.reshape(1, -1, 1, *([1] * 2 * nd))
    ci_ = ci.reshape(1, 1, -1, *([1] * 2 * nd))
    c_ = c.reshape(1, cout, cin_g, *([1] * 2 * nd))
    spatial_idx = tuple(np.where(g >= 0, g, 0)[None, None, None] for g in pos_grids)
    sout_idx = tuple(
        np.arange(s).reshape([1] * (3 + d) + [s] + [1] * (2 * nd - d - 1))
        for d, s in enumerate(spatial_out)
    )
    k_idx = tuple(
        np.arange(s).reshape([1] * (3 + nd + d) + [s] + [1] * (nd - d - 1))
        for d, s in enumerate(kernel)
    )
    full = (nbatch, cout, cin_g, *grid_shape)
    a_idx = np.broadcast_to(lhs_iota[(n_, c_, *spatial_idx)], full).ravel()
    b_idx = np.broadcast_to(rhs_iota[(o_, ci_, *k_idx)], full).ravel()
    out_idx = np.broadcast_to(out_iota[(n_, o_, *sout_idx)], full).ravel()
    keep = np.broadcast_to(valid[None, None, None], full).ravel()
    a_idx, b_idx, out_idx = a_idx[keep], b_idx[keep], out_idx[keep]
    return [
        _bilinear(
            ctx,
            math.prod(out_shape),
            out_idx,
            a_idx,
            b_idx,
            _nonzero_mask(ctx.value(0), a_idx) if ctx.deps[0] is None else None,
            _nonzero_mask(ctx.value(1), b_idx) if ctx.deps[1] is None else None,
        )
    ]


# ------------------------------------------------------- higher-order rules


def _cond_rule(ctx: RuleContext) -> list[Deps]:
    branches = ctx.params["branches"]
    index = ctx.value(0)
    operands, fns = ctx.deps[1:], ctx.in_value_fns()[1:]
    if index is not None:
        which = int(np.clip(int(index), 0, len(branches) - 1))
        return ctx.call(branches[which], operands, fns)
    outs = [ctx.call(b, operands, fns) for b in branches]
    return [union(list(group)) for group in zip(*outs, strict=True)]


def _same(a: Deps, b: Deps) -> bool:
    """Whether `b` (a superset of `a`) equals `a`."""
    if a is None or b is None:
        return a is None and b is None
    if a._jac.nnz != b._jac.nnz:
        return False
    return a._hess is None or a._hess.nnz == b._hess.nnz


def _sets_equal(a: _Sets, b: _Sets) -> bool:
    return np.array_equal(a.keys, b.keys)


def _equal(a: Deps, b: Deps) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if not _sets_equal(a._jac, b._jac):
        return False
    return a._hess is None or _sets_equal(a._hess, b._hess)


_MAX_ITERATIONS = 100_000


def _while_rule(ctx: RuleContext) -> list[Deps]:
    p = ctx.params
    nc, nb = p["cond_nconsts"], p["body_nconsts"]
    consts = ctx.deps[nc : nc + nb]
    const_fns = ctx.in_value_fns()[nc : nc + nb]
    carry = list(ctx.deps[nc + nb :])
    unknown = [lambda: None] * len(carry)
    for _ in range(_MAX_ITERATIONS):
        new = ctx.call(p["body_jaxpr"], [*consts, *carry], [*const_fns, *unknown])
        new = [union([c, d]) for c, d in zip(carry, new, strict=True)]
        if all(_same(c, d) for c, d in zip(carry, new, strict=True)):
            return carry
        carry = new
    raise SparsityError(
        "The dependency sets of a `while_loop` carry did not reach a fixed point "
        f"in {_MAX_ITERATIONS} iterations; write the loop as a `lax.scan` or "
        "`fori_loop` with static bounds."
    )


def _scan_rule(ctx: RuleContext) -> list[Deps]:
    p = ctx.params
    nconsts, ncarry, length = p["num_consts"], p["num_carry"], p["length"]
    fns = ctx.in_value_fns()
    consts, const_fns = ctx.deps[:nconsts], fns[:nconsts]
    carry = list(ctx.deps[nconsts : nconsts + ncarry])
    xs = ctx.deps[nconsts + ncarry :]
    xs_shapes = [ctx.in_shape(i) for i in range(nconsts + ncarry, len(ctx.deps))]
    ys_shapes = [ctx.out_shape(i) for i in range(ncarry, len(ctx.eqn.outvars))]
    unknown_carry = [lambda: None] * ncarry
    ys_steps: list[list[Deps]] = []
    steps = range(length - 1, -1, -1) if p["reverse"] else range(length)
    for count, t in enumerate(steps):
        x_t = []
        for d, shape in zip(xs, xs_shapes, strict=True):
            inner = math.prod(shape[1:])
            x_t.append(take(d, np.arange(inner) + t * inner))
        x_fns = [lambda: None] * len(xs)
        outs = ctx.call(
            p["jaxpr"], [*consts, *carry, *x_t], [*const_fns, *unknown_carry, *x_fns]
        )
        new_carry, y_t = outs[:ncarry], outs[ncarry:]
        ys_steps.append(y_t)
        stationary = all(x is None for x in xs) and all(
            _equal(c, d) for c, d in zip(carry, new_carry, strict=True)
        )
        carry = new_carry
        if stationary:
            ys_steps.extend([y_t] * (length - count - 1))
            break
    if p["reverse"]:
        ys_steps = ys_steps[::-1]
    ys = []
    for j, shape in enumerate(ys_shapes):
        per_step = [s[j] for s in ys_steps]
        inner = math.prod(shape[1:])
        ys.append(_vstack(per_step, [inner] * len(per_step), ctx.n, ctx.hessian))
    return [*carry, *ys]


# ---------------------------------------------------------------- registry


def _defrule(rule, *names: str) -> None:
    """Register `rule` for each primitive `names` (attribute names of
    `jax.extend.core.primitives`); a name the installed JAX does not define
    fails here, at import, instead of leaving the primitive without a rule."""
    for name in names:
        register_sparsity_rule(find_primitive(name, error=SparsityError), rule)


_defrule(
    _linear_rule,
    "add_p", "sub_p", "neg_p", "copy_p", "reduce_precision_p", "real_p", "imag_p",
    "conj_p", "add_jaxvals_p", "max_p", "min_p", "abs_p", "rem_p", "clamp_p",
)  # fmt: skip
_defrule(
    _nonlinear_rule,
    "exp_p", "exp2_p", "log_p", "log1p_p", "expm1_p", "sin_p", "cos_p", "tan_p",
    "asin_p", "acos_p", "atan_p", "sinh_p", "cosh_p", "tanh_p", "asinh_p",
    "acosh_p", "atanh_p", "logistic_p", "sqrt_p", "rsqrt_p", "cbrt_p", "square_p",
    "erf_p", "erfc_p", "erf_inv_p", "lgamma_p", "digamma_p", "pow_p", "atan2_p",
    "bessel_i0e_p", "bessel_i1e_p", "polygamma_p", "igamma_p", "igammac_p",
    "zeta_p",
)  # fmt: skip
_defrule(
    _zero_rule,
    "sign_p", "floor_p", "ceil_p", "round_p", "is_finite_p", "stop_gradient_p",
    "eq_p", "ne_p", "lt_p", "le_p", "gt_p", "ge_p", "nextafter_p", "argmax_p",
    "argmin_p", "and_p", "or_p", "not_p", "xor_p", "iota_p",
)  # fmt: skip
_defrule(
    _identity_rule,
    "convert_element_type_p", "reshape_p", "squeeze_p", "sharding_constraint_p",
)  # fmt: skip
_defrule(_multi_identity_rule, "optimization_barrier_p")
_defrule(_mul_rule, "mul_p")
_defrule(_div_rule, "div_p")
_defrule(_integer_pow_rule, "integer_pow_p")
_defrule(_select_n_rule, "select_n_p")
_defrule(_index_rule(_transpose_map, "permutation"), "transpose_p")
_defrule(_broadcast_in_dim_rule, "broadcast_in_dim_p")
_defrule(
    _index_rule(_slice_map, "start_indices", "limit_indices", "strides"), "slice_p"
)
_defrule(_index_rule(_rev_map, "dimensions"), "rev_p")
_defrule(_concatenate_rule, "concatenate_p")
_defrule(_split_rule, "split_p")
_defrule(_stack_rule, "stack_p")
_defrule(_unstack_rule, "unstack_p")
_defrule(_tile_rule, "tile_p")
_defrule(_pad_rule, "pad_p")
_defrule(_dynamic_slice_rule, "dynamic_slice_p")
_defrule(_dynamic_update_slice_rule, "dynamic_update_slice_p")
_defrule(_gather_rule, "gather_p")
_defrule(_scatter_rule(overwrite=True, nonlinear=False), "scatter_p")
_defrule(
    _scatter_rule(overwrite=False, nonlinear=False),
    "scatter_add_p", "scatter_sub_p", "scatter_max_p", "scatter_min_p",
)  # fmt: skip
_defrule(_scatter_rule(overwrite=False, nonlinear=True), "scatter_mul_p")
_defrule(_reduce_rule(nonlinear=False), "reduce_sum_p", "reduce_max_p", "reduce_min_p")
_defrule(_reduce_rule(nonlinear=True), "reduce_prod_p")
_defrule(_cumulative_rule(nonlinear=False), "cumsum_p", "cummax_p", "cummin_p")
_defrule(_cumulative_rule(nonlinear=True), "cumprod_p", "cumlogsumexp_p")
_defrule(_sort_rule, "sort_p")
_defrule(_dot_general_rule, "dot_general_p")
_defrule(_conv_rule, "conv_general_dilated_p")
_defrule(_cond_rule, "cond_p")
_defrule(_while_rule, "while_p")
_defrule(_scan_rule, "scan_p")
