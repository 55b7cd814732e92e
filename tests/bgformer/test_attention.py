import torch

from atlasclust.bgformer._attention import AnchorAttention, BipartiteEncoder


def test_heads_are_concatenated_per_cell():
    torch.manual_seed(0)
    attention = AnchorAttention(12, n_heads=3)
    cells, anchors = torch.randn(7, 12), torch.randn(5, 12)
    output, weights = attention(cells, anchors)
    assert output.shape == (7, 12) and weights.shape == (7, 3, 5)
    torch.testing.assert_close(weights.sum(dim=-1), torch.ones(7, 3))
    keys, values = attention.key(anchors), attention.value(anchors)
    for head in range(3):
        cols = slice(4 * head, 4 * head + 4)
        expected_weights = torch.softmax(cells[:, cols] @ keys[:, cols].T, dim=-1)
        torch.testing.assert_close(weights[:, head], expected_weights)
        torch.testing.assert_close(output[:, cols], expected_weights @ values[:, cols])


def test_a_cell_embedding_does_not_depend_on_its_batch():
    # the reference's reshape mixed cells of a batch; ours must be row-wise
    torch.manual_seed(1)
    encoder = BipartiteEncoder(16, n_heads=4, n_ffn=32, dropout=0.0).eval()
    cells, anchors = torch.randn(9, 16), torch.randn(6, 16)
    full, _ = encoder(cells, anchors)
    permutation = torch.randperm(9)
    permuted, _ = encoder(cells[permutation], anchors)
    torch.testing.assert_close(permuted, full[permutation])
    alone, _ = encoder(cells[:1], anchors)
    torch.testing.assert_close(alone, full[:1])
