import pytest
import torch

from atlasclust.bgformer import BGFormerModule


def _module(n_batch=0):
    torch.manual_seed(0)
    module = BGFormerModule(6, 4, n_latent=8, n_anchors=4, n_heads=2, n_ffn=16, n_batch=n_batch)
    batch_means = [[0.0] * 4, [2.0] * 4] if n_batch else None
    module.set_gene_statistics([0, 2, 3, 5], [0.5] * 4, [0.5] * 4, 10_000.0, batch_means)
    return module


def test_the_input_is_median_normalised_log_scaled_and_clipped():
    module = _module()
    counts = torch.tensor([[1.0, 9.0, 0.0, 0.0, 0.0, 0.0], [1e6, 0.0, 0.0, 0.0, 0.0, 0.0]])
    genes, size_factor, scaled = module.prepare_input(counts)
    assert genes.tolist() == [[1.0, 0.0, 0.0, 0.0], [1e6, 0.0, 0.0, 0.0]]  # the chosen genes only
    torch.testing.assert_close(size_factor, torch.tensor([1e-3, 100.0]))  # library over all genes / median
    torch.testing.assert_close(scaled[0, 1], torch.tensor(-1.0))  # (log1p(0) - 0.5) / 0.5
    assert scaled[1, 0] == 10.0  # (log1p(10,000) - 0.5) / 0.5 = 17.4, clipped as sc.pp.scale(max_value=10)


def test_with_batches_each_cell_is_centred_on_its_own_batch_and_needs_its_batch():
    module = _module(n_batch=2)
    counts = torch.tensor([[0.0, 1.0, 0.0, 0.0, 1.0, 0.0]] * 2)  # no counts in the chosen genes
    with pytest.raises(ValueError, match="batch_index"):
        module.prepare_input(counts)
    _, _, scaled = module.prepare_input(counts, torch.tensor([0, 1]))
    torch.testing.assert_close(scaled[0] - scaled[1], torch.full((4,), 4.0))  # means 0 and 2, std 0.5


def test_soft_assignment_needs_centres_and_centres_survive_a_state_dict_round_trip():
    module = _module()
    with pytest.raises(RuntimeError, match="not initialised"):
        module.soft_assignment(torch.zeros(2, 8))
    module.set_centers(torch.randn(3, 8), start_fractions=[0.2, 0.3, 0.5])
    restored = _module()
    restored.load_state_dict(module.state_dict())
    torch.testing.assert_close(restored.centers, module.centers)
    assert restored.soft_assignment(torch.zeros(2, 8)).sum(dim=1).tolist() == pytest.approx([1.0, 1.0])
