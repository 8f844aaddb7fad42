import torch

from scoregrad.surrogate import inject_gradient, magic_box, score_function_surrogate


def test_magic_box_is_one_with_score_gradient():
    theta = torch.tensor([0.3, -1.2], requires_grad=True)
    log_prob = torch.distributions.Normal(theta, 1.0).log_prob(torch.tensor([1.0, 0.0]))
    box = magic_box(log_prob)
    assert torch.equal(box.detach(), torch.ones(2))
    (grad,) = torch.autograd.grad(box.sum(), theta)
    torch.testing.assert_close(grad, torch.tensor([1.0, 0.0]) - theta.detach())


def test_baseline_term_has_zero_value_and_shifts_gradient():
    theta = torch.tensor(0.5, requires_grad=True)
    log_prob = torch.distributions.Normal(theta, 1.0).log_prob(torch.tensor(2.0))
    out = score_function_surrogate(log_prob, torch.tensor(3.0), baseline=torch.tensor(1.0))
    assert out.item() == 3.0
    (grad,) = torch.autograd.grad(out, theta)
    torch.testing.assert_close(grad, torch.tensor((3.0 - 1.0) * (2.0 - 0.5)))


def test_inject_gradient_keeps_batch_shape_and_value_zero():
    p = torch.randn(4, 3, requires_grad=True)
    g = torch.randn(4, 3)
    term = inject_gradient(p, g, batch_ndim=1)
    assert term.shape == (4,) and torch.all(term == 0)
    (grad,) = torch.autograd.grad(term.sum(), p)
    torch.testing.assert_close(grad, g)
