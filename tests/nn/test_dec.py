import torch

from atlasclust.nn import dec_loss, student_t_assignment, target_distribution


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
