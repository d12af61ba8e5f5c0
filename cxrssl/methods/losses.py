"""The self-supervised losses, as pure functions of projections.

Each takes only tensors and hyper-parameters, works under autocast (the
numerically sensitive parts run in fp32), and is tested against a naive,
loop-based reference in tests/test_losses.py. With several processes
(:mod:`cxrssl.distributed`) NT-Xent takes its negatives from every process
and Sinkhorn normalises over the global batch; each loss is the mean over
this process's share, so DDP's gradient average is the global batch's
gradient (tests/test_distributed.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from cxrssl import distributed


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's normalised-temperature cross entropy (Chen et al., 2020).

    Args:
        z1: (N, D) projections of view 1 of N images (not yet normalised).
        z2: (N, D) projections of view 2 of the same images.
        temperature: the softmax temperature tau.

    Returns:
        The loss averaged over all 2N anchors: for anchor i with positive j,
        ``-log(exp(s_ij / tau) / sum_{k != i} exp(s_ik / tau))`` with cosine
        similarities s, the other 2N - 2 views in the batch as negatives.
        With W processes, the anchors are this process's 2N views and the
        candidates all 2NW views, gathered with gradients.
    """
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    if not distributed.active():
        logits = z @ z.T / temperature  # (2N, 2N)
        logits.fill_diagonal_(float("-inf"))
        positives = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
        return F.cross_entropy(logits, positives)
    world, rank = distributed.world_size(), distributed.rank()
    candidates = torch.cat([distributed.gather(z[:n]), distributed.gather(z[n:])])  # (2NW, D): view 1s, view 2s
    logits = z @ candidates.T / temperature  # (2N, 2NW)
    own = torch.arange(n, device=z.device) + rank * n
    itself = torch.cat([own, own + world * n])
    logits[torch.arange(2 * n, device=z.device), itself] = float("-inf")
    return F.cross_entropy(logits, torch.cat([own + world * n, own]))


def info_nce(query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor, temperature: float) -> torch.Tensor:
    """MoCo's InfoNCE: each query against its key (positive) and a queue of negatives.

    Args:
        query: (N, D) query projections (not yet normalised).
        key: (N, D) key projections of the same images (no gradient needed).
        queue: (K, D) normalised keys of earlier batches.
        temperature: tau (0.2 in MoCo v2).

    Returns:
        Mean cross entropy with the positive at index 0 of each row of
        ``[q.k, q.queue]`` / tau.
    """
    q = F.normalize(query.float(), dim=1)
    k = F.normalize(key.float(), dim=1)
    positive = torch.einsum("nd,nd->n", q, k).unsqueeze(1)  # (N, 1)
    negative = torch.einsum("nd,kd->nk", q, queue.float())  # (N, K)
    logits = torch.cat([positive, negative], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


def byol_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BYOL's regression loss ``2 - 2 cos(p, z)``, averaged over the batch (Grill et al., 2020).

    Args:
        prediction: (N, D) online predictions for one view.
        target: (N, D) target projections of the other view (no gradient).
    """
    p = F.normalize(prediction.float(), dim=1)
    z = F.normalize(target.float(), dim=1)
    return (2 - 2 * (p * z).sum(dim=1)).mean()


@torch.no_grad()
def sinkhorn(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3) -> torch.Tensor:
    """SwAV's Sinkhorn-Knopp: soft, equipartitioned assignments of samples to prototypes.

    Computed in fp32 whatever the input dtype, as in SwAV's reference code.

    Args:
        scores: (N, K) similarities of N samples to K prototypes.
        epsilon: entropy regularisation (0.05 in SwAV).
        iterations: normalisation rounds (3 in SwAV).

    Returns:
        Q of shape (N, K): each row sums to 1; each column sums to about N/K.
    """
    # The reference normalises Q = exp(scores / eps) in place; the same steps in
    # log space give the same Q without overflow or underflow for large scores.
    # With W processes (equal N each) the samples are the global batch's, as in
    # SwAV's distributed code: sums over samples are all-reduced, N is N * W.
    log_q = (scores.float() / epsilon).T  # (K, N)
    k, n = log_q.shape
    n *= distributed.world_size()
    log_q = log_q - _samples_logsumexp(log_q.flatten())  # total mass 1
    for _ in range(iterations):
        log_q = log_q - _samples_logsumexp(log_q, dim=1, keepdim=True) - math.log(k)  # each prototype: 1/K
        log_q = log_q - torch.logsumexp(log_q, dim=0, keepdim=True) - math.log(n)  # each sample: 1/N
    return torch.exp(log_q + math.log(n)).T  # (N, K), rows sum to 1


def _samples_logsumexp(x: torch.Tensor, dim: int = 0, keepdim: bool = False) -> torch.Tensor:
    """logsumexp over a dimension of samples that is split across processes."""
    local = torch.logsumexp(x, dim=dim, keepdim=keepdim)
    if not distributed.active():
        return local
    return torch.logsumexp(distributed.gather_no_grad(local.unsqueeze(0)), dim=0)


def swapped_prediction(scores: list[torch.Tensor], assignments: list[torch.Tensor], temperature: float) -> torch.Tensor:
    """SwAV's swapped prediction loss.

    Args:
        scores: per crop, (N, K) prototype scores (all crops: global then local).
        assignments: per global crop i, (N, K) Sinkhorn codes Q_i (targets).
        temperature: softmax temperature of the predictions (0.1 in SwAV).

    Returns:
        Mean over global crops i and every other crop v of
        ``-sum_k Q_i[k] log softmax(scores_v / T)[k]``.
    """
    total, terms = 0.0, 0
    for i, codes in enumerate(assignments):
        for v, crop_scores in enumerate(scores):
            if v == i:
                continue
            log_p = F.log_softmax(crop_scores.float() / temperature, dim=1)
            total = total - (codes * log_p).sum(dim=1).mean()
            terms += 1
    return total / terms
