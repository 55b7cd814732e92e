import pytest
import torch

from atlasclust.nn import CountInputBuffers


class Reader(CountInputBuffers, torch.nn.Module):
    def __init__(self, n_input, n_batch=0):
        super().__init__()
        self.register_input_buffers(n_input, n_batch)


def test_the_transform_is_saved_with_the_weights_and_set_in_place():
    module = Reader(3, n_batch=2)
    assert set(module.state_dict()) == {"gene_index", "gene_mean", "gene_std", "median_library_size", "batch_gene_mean"}
    buffer = module.gene_mean
    module.set_gene_statistics([4, 0, 2], [0.1, 0.2, 0.3], [1.0, 2.0, 3.0], 1500.0, [[0.0] * 3, [1.0] * 3])
    assert module.gene_mean is buffer  # copied into the buffer: a module on a GPU keeps it there
    assert module.gene_index.tolist() == [4, 0, 2] and module.gene_index.dtype == torch.long
    assert float(module.median_library_size) == 1500.0
    assert module.batch_gene_mean[1].tolist() == [1.0, 1.0, 1.0]


def test_a_module_without_batches_has_no_batch_means_and_refuses_a_wrong_width():
    module = Reader(2)
    assert "batch_gene_mean" not in module.state_dict()
    module.set_gene_statistics([0, 1], [0.0, 0.0], [1.0, 1.0], 10.0, None)
    with pytest.raises(RuntimeError):
        module.set_gene_statistics([0, 1, 2], [0.0] * 3, [1.0] * 3, 10.0)
