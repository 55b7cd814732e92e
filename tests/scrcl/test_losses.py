"""The linear-memory losses equal the reference's dense N x N formulas (reference-spec §2.4)."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from atlasclust.data._graphs import binary_symmetric
from atlasclust.scrcl._data import balanced_weights
from atlasclust.scrcl._graph_data import CellGraphData
from atlasclust.scrcl._losses import cvc_loss, hea_loss, ndc_loss

TEMPERATURE = 0.5


def _dense_ndc(mlp, gcn, adjacency, temperature, weight=None):
    """The reference: two N x N KL matrices, neighbour means over N(i) and i, other-cell means.

    With ``weight``, the other-cell mean is weighted by each other cell's weight.
    """
    log_p = F.log_softmax(mlp / temperature, dim=1)
    log_q = F.log_softmax(gcn / temperature, dim=1)
    p, q = log_p.exp(), log_q.exp()
    kl_pq = (p * log_p).sum(1)[:, None] - p @ log_q.T  # KL(P_i || Q_j)
    kl_qp = (q * log_q).sum(1)[None, :] - log_p @ q.T  # KL(Q_j || P_i)
    kappa = kl_pq + kl_qp
    n = len(mlp)
    eye = torch.eye(n, dtype=mlp.dtype)
    numerator = ((adjacency + eye) * kappa).sum(1) / (adjacency.sum(1) + 1)
    others = (1 - eye) * (torch.ones(n, dtype=mlp.dtype) if weight is None else weight)[None, :]
    denominator = (others * kappa).sum(1) / others.sum(1)
    return (numerator / denominator).mean()


def _dense_cvc(mlp, gcn, adjacency):
    similarity = mlp @ gcn.T
    target = adjacency + torch.eye(len(mlp), dtype=mlp.dtype)
    return ((similarity - target) ** 2).mean()


def _dense_hea(mlp, gcn, temperature):
    def skl(a, b):
        return ((a.exp() - b.exp()) * (a - b)).sum()

    glob = skl(F.log_softmax(mlp.flatten() / temperature, 0), F.log_softmax(gcn.flatten() / temperature, 0))
    lp, lq = F.log_softmax(mlp / temperature, 1), F.log_softmax(gcn / temperature, 1)
    kl_pq = (lp.exp() * (lp - lq)).sum(1).mean()
    kl_qp = (lq.exp() * (lq - lp)).sum(1).mean()
    return glob + 0.5 * (kl_pq + kl_qp)


@pytest.fixture
def random_problem():
    rng = np.random.default_rng(0)
    n, width = 60, 12
    adjacency = binary_symmetric(sp.random(n, n, density=0.08, random_state=1))
    features = rng.normal(size=(n, 5)).astype(np.float32)
    data = CellGraphData.build(adjacency, features)
    mlp = F.normalize(torch.as_tensor(rng.normal(size=(n, width))), dim=1)
    gcn = F.normalize(torch.as_tensor(rng.normal(size=(n, width))), dim=1)
    return data, mlp, gcn, torch.as_tensor(adjacency.toarray(), dtype=torch.float64)


def _double(batch):
    return {name: value.double() if value.is_floating_point() else value for name, value in batch.items()}


def _full_batch(data):
    batch = _double(data.batch(np.random.default_rng(3).permutation(data.n_cells), "cpu"))
    order = batch["nodes"].numpy()
    return batch, order


def test_ndc_matches_dense_formula(random_problem):
    data, mlp, gcn, adjacency = random_problem
    batch, order = _full_batch(data)
    fast = ndc_loss(
        mlp[order],
        gcn[order],
        batch["pairs"],
        batch["node_degree"],
        n_total=data.n_cells,
        temperature=TEMPERATURE,
    )
    dense = _dense_ndc(mlp, gcn, adjacency, TEMPERATURE)
    assert torch.isclose(fast, dense, rtol=1e-5), (fast, dense)


def test_cvc_matches_dense_formula(random_problem):
    data, mlp, gcn, adjacency = random_problem
    batch, order = _full_batch(data)
    fast = cvc_loss(
        mlp[order], gcn[order], batch["pairs"], n_total=data.n_cells, n_target_entries=data.n_target_entries
    )
    dense = _dense_cvc(mlp, gcn, adjacency)
    assert torch.isclose(fast, dense, rtol=1e-5), (fast, dense)


def test_hea_matches_dense_formula(random_problem):
    _, mlp, gcn, _ = random_problem
    assert torch.isclose(hea_loss(mlp, gcn, temperature=TEMPERATURE), _dense_hea(mlp, gcn, TEMPERATURE), rtol=1e-5)


def test_isolated_cells_and_self_loops_are_handled(random_problem):
    data, mlp, gcn, adjacency = random_problem
    adjacency[:5] = 0
    adjacency[:, :5] = 0
    graph = sp.csr_matrix(adjacency.numpy())
    data = CellGraphData.build(binary_symmetric(graph), np.zeros((len(mlp), 3), dtype=np.float32))
    batch, order = _full_batch(data)
    fast = ndc_loss(mlp[order], gcn[order], batch["pairs"], batch["node_degree"], n_total=len(mlp), temperature=1.0)
    assert torch.isclose(fast, _dense_ndc(mlp, gcn, adjacency, 1.0), rtol=1e-5)


def test_mini_batch_estimates_are_close_to_full_batch(random_problem):
    data, mlp, gcn, _ = random_problem
    full_batch, order = _full_batch(data)
    full = ndc_loss(mlp[order], gcn[order], full_batch["pairs"], full_batch["node_degree"], n_total=60, temperature=1.0)
    estimates = []
    for seeds in np.array_split(np.random.default_rng(5).permutation(60), 4):
        batch = _double(data.batch(seeds, "cpu"))
        nodes = batch["nodes"].numpy()
        estimates.append(
            ndc_loss(mlp[nodes], gcn[seeds], batch["pairs"], batch["node_degree"], n_total=60, temperature=1.0)
        )
    assert float(torch.stack(estimates).mean()) == pytest.approx(float(full), rel=0.05)


def test_weighted_ndc_weighs_the_other_cells(random_problem):
    data, mlp, gcn, adjacency = random_problem
    # the first 40 cells one large group, the last 20 another: each group weighs alike
    data.negative_weight = balanced_weights(np.repeat([0, 1], [40, 20]))
    np.testing.assert_allclose(data.negative_weight, np.repeat([0.75, 1.5], [40, 20]))
    batch, order = _full_batch(data)
    np.testing.assert_array_equal(batch["negative_weight"].numpy(), data.negative_weight[order])
    weight = torch.as_tensor(data.negative_weight, dtype=torch.float64)

    def fast(negative_weight):
        return ndc_loss(
            mlp[order],
            gcn[order],
            batch["pairs"],
            batch["node_degree"],
            n_total=data.n_cells,
            temperature=TEMPERATURE,
            negative_weight=negative_weight,
        )

    dense = _dense_ndc(mlp, gcn, adjacency, TEMPERATURE, weight)
    assert torch.isclose(fast(batch["negative_weight"]), dense, rtol=1e-5)
    assert not torch.isclose(dense, _dense_ndc(mlp, gcn, adjacency, TEMPERATURE), rtol=1e-3)
    # weights all alike give the reference's loss
    assert torch.isclose(fast(torch.ones(len(order), dtype=torch.float64)), fast(None), rtol=1e-6)
    # and batches of seeds estimate the weighted loss as they estimate the plain one
    estimates = []
    for seeds in np.array_split(np.random.default_rng(5).permutation(60), 4):
        seed_batch = _double(data.batch(seeds, "cpu"))
        nodes = seed_batch["nodes"].numpy()
        estimates.append(
            ndc_loss(
                mlp[nodes],
                gcn[seeds],
                seed_batch["pairs"],
                seed_batch["node_degree"],
                n_total=60,
                temperature=TEMPERATURE,
                negative_weight=seed_batch["negative_weight"],
            )
        )
    assert float(torch.stack(estimates).mean()) == pytest.approx(float(dense), rel=0.05)
