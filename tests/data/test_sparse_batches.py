import warnings

import torch

from atlasclust.data import sparse_batches


def _csr() -> torch.Tensor:
    return torch.sparse_csr_tensor(torch.tensor([0, 1, 2]), torch.tensor([0, 1]), torch.tensor([1.0, 2.0]), (2, 2))


def test_sparse_batches_are_built_quietly_and_the_settings_come_back():
    before = list(warnings.filters)
    with torch.sparse.check_sparse_tensor_invariants(enable=True):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with sparse_batches():
                assert not torch.sparse.check_sparse_tensor_invariants.is_enabled()
                dense = _csr().to_dense()
                warnings.warn("Sparse CSR tensor support is in beta (as torch words it)", UserWarning, stacklevel=1)
            assert torch.sparse.check_sparse_tensor_invariants.is_enabled()  # the caller's setting again
        assert not [w for w in caught if "Sparse CSR tensor support is in beta" in str(w.message)]
    torch.testing.assert_close(dense, torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    assert warnings.filters == before
