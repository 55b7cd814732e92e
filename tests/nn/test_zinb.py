import warnings
from unittest import mock

import pytest
import torch
from scvi.distributions._negative_binomial import log_zinb_positive

from atlasclust.nn import ZINBDecoder, zinb_nll


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
