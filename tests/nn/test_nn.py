import warnings
from unittest import mock

import pytest
import torch
from scvi.distributions._negative_binomial import log_zinb_positive

from atlasclust.nn import ZINBDecoder, dec_loss, student_t_assignment, target_distribution, zinb_nll


def test_zinb_decoder_uses_scvi_likelihood_with_size_factors():
    torch.manual_seed(0)
    decoder = ZINBDecoder(8, 5)
    h, size_factor = torch.randn(4, 8), torch.tensor([0.5, 1.0, 2.0, 4.0])
    counts = torch.poisson(torch.full((4, 5), 3.0))
    dist = decoder(h, size_factor)
    hidden = decoder.hidden(h)
    mean = torch.exp(decoder.mean(hidden)) * size_factor[:, None]
    theta = torch.nn.functional.softplus(decoder.dispersion(hidden))
    expected = -log_zinb_positive(counts, mean, theta, decoder.dropout_logits(hidden)).mean(dim=1)
    torch.testing.assert_close(zinb_nll(dist, counts), expected)
    # doubling the library doubles the predicted mean
    torch.testing.assert_close(decoder(h, 2 * size_factor).mu, 2 * dist.mu)


def test_zinb_log_prob_checks_the_support_only_when_asked():
    # the check reads a flag back from the GPU at every step; counts are validated before training
    torch.manual_seed(0)
    dist = ZINBDecoder(8, 5)(torch.randn(4, 8), torch.ones(4))
    counts = torch.poisson(torch.full((4, 5), 3.0))
    with mock.patch("torch._is_all_true", side_effect=AssertionError("support checked")):
        zinb_nll(dist, counts)
    dist._validate_args = True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        zinb_nll(dist, -counts - 1)
    assert any("support" in str(w.message) for w in caught)


def test_zinb_decoder_on_a_table_equals_the_decoder_on_looked_up_rows():
    torch.manual_seed(0)
    decoder = ZINBDecoder(8, 5)
    table = torch.randn(3, 8, requires_grad=True)
    rows, size_factor = torch.tensor([2, 0, 2, 1]), torch.tensor([0.5, 1.0, 2.0, 4.0])
    counts = torch.poisson(torch.full((4, 5), 3.0))
    by_table = zinb_nll(decoder(table, size_factor, rows=rows), counts).sum()
    (grad_table,) = torch.autograd.grad(by_table, table)
    by_rows = zinb_nll(decoder(table[rows], size_factor), counts).sum()
    (grad_rows,) = torch.autograd.grad(by_rows, table)
    torch.testing.assert_close(by_table, by_rows)
    torch.testing.assert_close(grad_table, grad_rows)


def test_student_t_assignment_prefers_the_nearest_centre():
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    q = student_t_assignment(torch.tensor([[1.0, 0.0], [9.0, 1.0]]), centers)
    torch.testing.assert_close(q.sum(dim=1), torch.ones(2))
    assert q[0, 0] > 0.9 and q[1, 1] > 0.9


def test_target_is_sharper_than_assignment_and_loss_vanishes_at_target():
    q = torch.softmax(torch.randn(50, 4), dim=1)
    p = target_distribution(q)
    entropy = lambda d: -(d * d.log()).sum(dim=1).mean()
    assert entropy(p) < entropy(q)
    assert dec_loss(p, p).abs().max() < 1e-4
    assert (dec_loss(q, p) > 0).all()


def test_gather_matmul_equals_the_sparse_product_and_its_gradient():
    from atlasclust.nn import gather_matmul

    generator = torch.Generator().manual_seed(0)
    matrix = torch.rand(30, 20, generator=generator) * (torch.rand(30, 20, generator=generator) < 0.2)
    # an uncoalesced tensor (a duplicated entry) as the gene graph builds it
    indices = torch.cat([matrix.nonzero().T, matrix.nonzero().T[:, :1]], dim=1)
    values = torch.cat([matrix[tuple(matrix.nonzero().T)], matrix[tuple(matrix.nonzero().T[:, :1])]])
    sparse = torch.sparse_coo_tensor(indices, values, (30, 20))
    dense = torch.randn(20, 5, generator=generator, requires_grad=True)
    expected = torch.sparse.mm(sparse, dense)
    result = gather_matmul(sparse, dense)
    torch.testing.assert_close(result, expected)
    (expected_grad,) = torch.autograd.grad(expected.square().sum(), dense)
    (grad,) = torch.autograd.grad(result.square().sum(), dense)
    torch.testing.assert_close(grad, expected_grad)


def test_batch_conditioned_decoder_equals_one_hot_at_the_hidden_layer():
    torch.manual_seed(0)
    n_in, n_genes, n_batch = 6, 9, 3
    decoder = ZINBDecoder(n_in, n_genes, n_batch=n_batch)
    torch.nn.init.normal_(decoder.batch_hidden.weight)  # zero at the start: give the batches an effect
    h, size_factor = torch.randn(5, n_in), torch.rand(5) + 0.5
    batch = torch.tensor([0, 2, 1, 2, 0])
    got = decoder(h, size_factor, batch_index=batch)
    # the same decoder written as scVI's: the one-hot batch code concatenated to the hidden layer's input
    hidden = torch.nn.Linear(n_in + n_batch, 2 * n_in)
    with torch.no_grad():
        hidden.weight.copy_(torch.cat([decoder.hidden.weight, decoder.batch_hidden.weight.T], dim=1))
        hidden.bias.copy_(decoder.hidden.bias)
    joint = hidden(torch.cat([h, torch.nn.functional.one_hot(batch, n_batch).float()], dim=1))
    torch.testing.assert_close(got.mu, torch.exp(decoder.mean(joint)) * size_factor[:, None])
    torch.testing.assert_close(got.zi_logits, decoder.dropout_logits(joint))
    # a table of anchors looked up per cell gives the same as the looked-up rows
    table, rows = torch.randn(4, n_in), torch.tensor([3, 3, 0, 1, 2])
    torch.testing.assert_close(
        decoder(table, size_factor, rows=rows, batch_index=batch).mu,
        decoder(table[rows], size_factor, batch_index=batch).mu,
    )
    with pytest.raises(ValueError, match="pass each cell's batch_index"):
        decoder(h, size_factor)
