"""Every loss against a naive, loop-based reference."""

import math

import pytest
import torch
import torch.nn.functional as F

from cxrssl.methods.losses import byol_loss, info_nce, nt_xent, sinkhorn, swapped_prediction


def cos(a, b):
    return float(a @ b / (a.norm() * b.norm()))


def nt_xent_reference(z1, z2, t):
    views = [*z1, *z2]
    n = len(z1)
    total = 0.0
    for i, anchor in enumerate(views):
        j = i + n if i < n else i - n
        denominator = sum(math.exp(cos(anchor, other) / t) for k, other in enumerate(views) if k != i)
        total += -math.log(math.exp(cos(anchor, views[j]) / t) / denominator)
    return total / (2 * n)


@pytest.mark.parametrize("n, d, t", [(2, 3, 0.5), (5, 8, 0.1), (7, 16, 1.0)])
def test_nt_xent_matches_reference(n, d, t):
    g = torch.Generator().manual_seed(n)
    z1, z2 = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    torch.testing.assert_close(nt_xent(z1, z2, t), torch.tensor(nt_xent_reference(z1, z2, t)), rtol=1e-4, atol=1e-5)


def test_nt_xent_is_low_for_matching_views():
    z = torch.randn(16, 32)
    assert nt_xent(z, z + 0.01 * torch.randn(16, 32), 0.1) < nt_xent(z, torch.randn(16, 32), 0.1)


def info_nce_reference(q, k, queue, t):
    total = 0.0
    queue = [F.normalize(x, dim=0) for x in queue]
    for qi, ki in zip(q, k):
        logits = [cos(qi, ki) / t] + [cos(qi, neg) / t for neg in queue]
        total += -logits[0] + math.log(sum(math.exp(x) for x in logits))
    return total / len(q)


def test_info_nce_matches_reference():
    g = torch.Generator().manual_seed(0)
    q, k, queue = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g), torch.randn(10, 6, generator=g)
    expected = info_nce_reference(q, k, queue, 0.2)
    torch.testing.assert_close(
        info_nce(q, k, F.normalize(queue, dim=1), 0.2), torch.tensor(expected), rtol=1e-4, atol=1e-5
    )


def test_byol_loss_matches_reference():
    g = torch.Generator().manual_seed(1)
    p, z = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    expected = sum(2 - 2 * cos(a, b) for a, b in zip(p, z)) / 5
    torch.testing.assert_close(byol_loss(p, z), torch.tensor(expected), rtol=1e-5, atol=1e-6)
    assert byol_loss(z, 3 * z) < 1e-5


def sinkhorn_reference(scores, epsilon, iterations):
    """SwAV's distributed_sinkhorn on one process, written out with loops."""
    n, k = scores.shape
    q = [[math.exp(float(scores[i, j]) / epsilon) for i in range(n)] for j in range(k)]  # K x N
    total = sum(map(sum, q))
    q = [[v / total for v in row] for row in q]
    for _ in range(iterations):
        for j in range(k):
            row_sum = sum(q[j])
            q[j] = [v / row_sum / k for v in q[j]]
        for i in range(n):
            col_sum = sum(q[j][i] for j in range(k))
            for j in range(k):
                q[j][i] = q[j][i] / col_sum / n
    return torch.tensor([[q[j][i] * n for j in range(k)] for i in range(n)])


@pytest.mark.parametrize("n, k, iterations", [(6, 4, 3), (9, 3, 1), (5, 7, 5)])
def test_sinkhorn_matches_reference(n, k, iterations):
    scores = torch.randn(n, k, generator=torch.Generator().manual_seed(n)) * 0.1
    torch.testing.assert_close(
        sinkhorn(scores, 0.05, iterations), sinkhorn_reference(scores, 0.05, iterations), rtol=1e-4, atol=1e-6
    )


def test_sinkhorn_marginals_and_fp32_under_bf16():
    g = torch.Generator().manual_seed(0)
    embeddings = F.normalize(torch.randn(64, 16, generator=g), dim=1)
    scores = embeddings @ F.normalize(torch.randn(16, 16, generator=g), dim=1).T
    q = sinkhorn(scores.bfloat16())
    assert q.dtype == torch.float32
    torch.testing.assert_close(q.sum(dim=1), torch.ones(64))
    column_error = [float((sinkhorn(scores, iterations=i).sum(dim=0) - 4).abs().max()) for i in (1, 3, 100)]
    assert column_error[0] > column_error[1] > column_error[2] and column_error[2] < 1e-3  # columns -> N/K
    assert torch.isfinite(sinkhorn(scores * 100)).all()  # large scores do not overflow


def test_swapped_prediction_matches_reference():
    g = torch.Generator().manual_seed(2)
    scores = [torch.randn(3, 5, generator=g) for _ in range(4)]
    codes = [sinkhorn(s) for s in scores[:2]]
    expected, terms = 0.0, 0
    for i in range(2):
        for v in range(4):
            if v != i:
                for row in range(3):
                    log_p = torch.log_softmax(scores[v][row] / 0.1, dim=0)
                    expected += -float((codes[i][row] * log_p).sum()) / 3
                terms += 1
    torch.testing.assert_close(
        swapped_prediction(scores, codes, 0.1), torch.tensor(expected / terms), rtol=1e-4, atol=1e-5
    )
