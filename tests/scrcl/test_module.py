import torch

from atlasclust.scrcl._module import SCRCLModule


def test_gene_graph_and_centres_take_the_saved_shapes_on_load():
    torch.manual_seed(0)
    module = SCRCLModule(5, n_hidden=8, n_refined=4, n_descriptors=3)
    module.set_gene_graph(torch.randn(5, 3), torch.tensor([[0, 1, 2], [1, 2, 3]]), torch.ones(3))
    module.cluster_centers = torch.randn(2, 16)
    restored = SCRCLModule(5, n_hidden=8, n_refined=4, n_descriptors=3)
    restored.load_state_dict(module.state_dict())
    assert restored.gene_edges.tolist() == [[0, 1, 2], [1, 2, 3]]
    torch.testing.assert_close(restored.cluster_centers, module.cluster_centers)
    torch.testing.assert_close(restored.gene_embedding(), module.gene_embedding())
    assert restored.gene_embedding().shape == (5, 4)


def test_a_model_saved_before_the_gene_means_loads_with_zero_means():
    module = SCRCLModule(4, n_hidden=8, n_refined=2, n_descriptors=3)
    state = module.state_dict()
    del state["gene_mean"]
    restored = SCRCLModule(4, n_hidden=8, n_refined=2, n_descriptors=3)
    restored.gene_mean.fill_(7.0)
    restored.load_state_dict(state)
    assert restored.gene_mean.tolist() == [0.0] * 4
