import torch


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
