import pytest
import torch

from atlasclust.bgformer._anchors import AnchorCodebook


# the cells are duplicates on purpose: k-means says it found fewer distinct points than clusters
@pytest.mark.filterwarnings("ignore:Number of distinct clusters:sklearn.exceptions.ConvergenceWarning")
def test_initialisation_never_gives_nan_anchors_even_with_duplicate_cells():
    codebook = AnchorCodebook(8, 4)
    h = torch.tensor([[1.0, 0, 0, 0]] * 20 + [[0, 1.0, 0, 0]] * 20)  # only two distinct encodings
    codebook.initialize(h, random_state=0)
    assert torch.isfinite(codebook.anchors).all()


def test_initial_anchors_are_means_of_their_cells():
    torch.manual_seed(0)
    centers = torch.eye(3) * 5
    h = torch.cat([c + 0.1 * torch.randn(30, 3) for c in centers])
    codebook = AnchorCodebook(3, 3)
    codebook.initialize(h, random_state=0)
    index, selected = codebook.assign(h)
    for anchor in range(3):
        torch.testing.assert_close(codebook.anchors[anchor], h[index == anchor].mean(dim=0))
    assert len(index.unique()) == 3


def test_usage_ema_and_refresh_move_only_dead_anchors():
    torch.manual_seed(0)
    codebook = AnchorCodebook(4, 3)
    with torch.no_grad():
        codebook.anchors.copy_(torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [-1.0, -1.0, -1.0]]))
    h = torch.cat([torch.tensor([[2.0, 0.1, 0.1]]).repeat(50, 1), torch.tensor([[0.1, 2.0, 0.1]]).repeat(50, 1)])
    index, _ = codebook.assign(h)
    for _ in range(30):
        codebook.update_usage(index)
    torch.testing.assert_close(codebook.usage, torch.tensor([0.5, 0.5, 0.0, 0.0]), atol=0.03, rtol=0)
    before = codebook.anchors.detach().clone()
    codebook.refresh(h)
    moved = (codebook.anchors - before).norm(dim=1)
    assert moved[:2].max() < 1e-6  # well-used anchors stay
    assert moved[2:].min() > 0.5  # dead anchors jump to cells of the batch
