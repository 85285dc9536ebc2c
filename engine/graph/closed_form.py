"""Exact closed-form edges of one attention block (the fast path), computed in chunks of query rows.

Under the rules every block is linear in its upstream gradient, and tokens mix only inside attention.
Seeding target token i with its stored gradient gives, at source token j != i (per head h):
  value path  c_v * A_h[i,j] * <U_h[i], v_h[j]>          (c_v = 1/2 AttnLRP, 1 CP-LRP)
  key path    1/2 * z_h[i,j] * G_h[i,j]                  (AttnLRP only; 0 under CP-LRP)
with U_h[i] the gradient at the attention output, z the scaled logits, and G the softmax backward of
1/2 <U_h[i], v_h[j]>. Constant parts of q, k, v (biases) are removed from the factors that carry
relevance back to the source, so their share is absorbed rather than attributed.
The diagonal needs no formula: seeding every target at once reproduces the source's own gradient, so
each source's out-edges sum to its relevance R_src[j]; the diagonal is R_src[j] minus its off-diagonal
out-edges (query path, residual and, without the mid split, the MLP).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from ..memory import CHUNK_ELEMENTS


@dataclass
class AttentionFactors:
    """Per-layer tensors (float32). H heads, T tokens, hd head size. *_lin: without constant parts."""

    q: torch.Tensor  # [H, T, hd]
    k: torch.Tensor  # [H, T, hd] (repeated to H for grouped-query attention)
    v: torch.Tensor  # [H, T, hd]
    k_lin: torch.Tensor
    v_lin: torch.Tensor
    u: torch.Tensor  # [H, T, hd] gradient at the attention output
    allowed: Optional[torch.Tensor]  # [T, T] bool, None = causal
    scaling: float


@dataclass
class SparseEdges:
    src: np.ndarray  # int32 [E]
    dst: np.ndarray  # int32 [E]
    weight: np.ndarray  # float32 [E]
    heads: np.ndarray  # float32 [E, H]
    paths: np.ndarray  # float32 [E, 3] (value, key, diagonal rest)
    absorbed: np.ndarray  # float32 [T]
    dropped_mass: float


class TopK:
    """Keeps the `cap` largest |w| off-diagonal candidates seen so far (streamed chunk by chunk)."""

    def __init__(self, cap: int):
        self.cap = cap
        self.parts: list[tuple] = []
        self.floor = 0.0
        self.count = 0

    def offer(self, dst, src, w, heads, value, key) -> None:
        keep = np.abs(w) > self.floor
        if not keep.any():
            return
        self.parts.append((dst[keep], src[keep], w[keep], heads[keep], value[keep], key[keep]))
        self.count += int(keep.sum())
        if self.count > 2 * self.cap:
            self._shrink()

    def _shrink(self) -> None:
        cols = [np.concatenate(c) for c in zip(*self.parts)]
        if len(cols[2]) > self.cap:
            idx = np.argpartition(-np.abs(cols[2]), self.cap - 1)[: self.cap]
            cols = [c[idx] for c in cols]
            self.floor = float(np.abs(cols[2]).min())
        self.parts, self.count = [tuple(cols)], len(cols[2])

    def result(self, n_heads: int):
        if not self.parts:
            e = np.zeros(0, np.int32)
            return (e, e, np.zeros(0, np.float32), np.zeros((0, n_heads), np.float32), np.zeros(0, np.float32),
                    np.zeros(0, np.float32))
        self._shrink()
        return self.parts[0]




def _chunk_rows(n_heads: int, t: int, budget: int = CHUNK_ELEMENTS) -> int:
    return max(1, min(t, budget // max(1, n_heads * t)))


def attention_edges(
    f: AttentionFactors, r_src: torch.Tensor, r_dst: torch.Tensor, rule: str, max_edges: int,
    budget: int = CHUNK_ELEMENTS,
) -> SparseEdges:
    """Edges dst token i <- src token j of one attention block. r_src/r_dst: [T] node relevance.

    budget: heads x rows x keys per chunk of query rows (about twelve float32 arrays of it live at once).
    """
    n_heads, t, _ = f.q.shape
    c_v = 0.5 if rule == "attnlrp" else 1.0
    top = TopK(max_edges)
    col_off = torch.zeros(t, dtype=torch.float64)  # sum over targets i != j of E[i, j]
    row_sum = torch.zeros(t, dtype=torch.float64)  # sum over sources j of E[i, j], off-diagonal
    diag_v = torch.zeros(n_heads, t)
    diag_k = torch.zeros(n_heads, t)
    total_off = 0.0
    rows = _chunk_rows(n_heads, t, budget)
    shared_v = f.v_lin is f.v  # no constant part: <U, v> serves both the edge and the softmax gradient
    for r0 in range(0, t, rows):
        r1 = min(t, r0 + rows)
        # causal models: rows < r1 never see columns >= r1, so the chunk only needs keys [0, n)
        n = r1 if f.allowed is None or not f.allowed[r0:r1, r1:].any() else t
        ri = torch.arange(r0, r1)
        local = ri - r0
        allowed = f.allowed[r0:r1, :n] if f.allowed is not None else torch.arange(n)[None, :] <= ri[:, None]
        q, u = f.q[:, r0:r1], f.u[:, r0:r1]
        z = torch.einsum("hid,hjd->hij", q, f.k[:, :n]).mul_(f.scaling)  # finite everywhere
        attn = torch.softmax(z.masked_fill(~allowed, float("-inf")), -1)
        if not bool(allowed.any(-1).all()):
            attn = attn.nan_to_num_(0.0)  # a row with nothing to attend to
        p_lin = torch.einsum("hid,hjd->hij", u, f.v_lin[:, :n])
        value = p_lin.mul_(attn)  # A <U, v_lin>; scaled by c_v below (masked entries are 0: A is 0 there)
        if rule == "attnlrp":
            # G = A * (a - sum_j A a) with a = 1/2 <U, v>; A a = value / 2 when v has no constant part
            half = value.mul_(0.5) if shared_v else value.mul_(c_v)
            a_attn = half if shared_v else attn * torch.einsum("hid,hjd->hij", u, f.v[:, :n]).mul_(0.5)
            g = a_attn - attn * a_attn.sum(-1, keepdim=True)
            z_lin = z if f.k_lin is f.k else torch.einsum("hid,hjd->hij", q, f.k_lin[:, :n]).mul_(f.scaling)
            key = z_lin.mul_(g).mul_(0.5)  # masked entries: g = 0
            value = half
        else:
            value = value.mul_(c_v)
            key = torch.zeros_like(value)
        diag_v[:, ri] = value[:, local, ri]
        diag_k[:, ri] = key[:, local, ri]
        edge = value.sum(0) + key.sum(0)  # [c, n]
        edge[local, ri] = 0.0  # off-diagonal only; the diagonal is derived below
        col_off[:n] += edge.sum(0).double()
        row_sum[r0:r1] += edge.sum(1).double()
        mag = edge.abs()
        total_off += float(mag.sum())
        # only candidates above the current top-k floor leave torch (most entries, once the floor has risen)
        i_idx, j_idx = (mag > top.floor).nonzero(as_tuple=True)
        if len(i_idx) == 0:
            continue
        v_e, k_e = value[:, i_idx, j_idx], key[:, i_idx, j_idx]
        top.offer(
            (i_idx + r0).numpy().astype(np.int32), j_idx.numpy().astype(np.int32), edge[i_idx, j_idx].numpy(),
            (v_e + k_e).T.numpy(), v_e.sum(0).numpy(), k_e.sum(0).numpy(),
        )
    dst, src, w, heads, val, key_ = top.result(n_heads)
    diag = (r_src.double() - col_off).float()  # each source's out-edges sum to its relevance
    dv, dk = diag_v.sum(0), diag_k.sum(0)
    idx = np.arange(t, dtype=np.int32)
    absorbed = (r_dst.double() - row_sum - diag.double()).float().numpy()
    return SparseEdges(
        src=np.concatenate([src, idx]),
        dst=np.concatenate([dst, idx]),
        weight=np.concatenate([w, diag.numpy()]).astype(np.float32),
        heads=np.concatenate([heads, (diag_v + diag_k).T.numpy()]).astype(np.float32),
        paths=np.concatenate([
            np.stack([val, key_, np.zeros_like(val)], 1),
            np.stack([dv.numpy(), dk.numpy(), (diag - dv - dk).numpy()], 1),
        ]).astype(np.float32),
        absorbed=absorbed,
        dropped_mass=max(0.0, total_off - float(np.abs(w).sum())),
    )


def diagonal_edges(r_src: torch.Tensor, r_dst: torch.Tensor) -> SparseEdges:
    """A token-wise block (the MLP half): edge i <- i carries the source's whole relevance."""
    t = r_src.shape[0]
    idx = np.arange(t, dtype=np.int32)
    w = r_src.float().numpy()
    return SparseEdges(idx, idx, w.astype(np.float32), np.zeros((t, 0), np.float32),
                       np.stack([np.zeros(t), np.zeros(t), w], 1).astype(np.float32),
                       (r_dst.float() - r_src.float()).numpy(), 0.0)
