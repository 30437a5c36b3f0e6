"""train.loop.adamw: torch's fused AdamW kernel, checked in float64 against AdamW written out by
hand (Loshchilov & Hutter with bias correction, no weight decay), and against a checkpoint of
the per-tensor optimizer it replaces."""

import torch

from rlxf.train.loop import adamw

LR, B1, B2, EPS = 1e-2, 0.9, 0.999, 1e-8


def _reference_steps(p0: torch.Tensor, grads: list[torch.Tensor]) -> torch.Tensor:
    p, m, v = p0.clone(), torch.zeros_like(p0), torch.zeros_like(p0)
    for t, g in enumerate(grads, start=1):
        m = B1 * m + (1 - B1) * g
        v = B2 * v + (1 - B2) * g * g
        m_hat, v_hat = m / (1 - B1 ** t), v / (1 - B2 ** t)
        p = p - LR * m_hat / (v_hat.sqrt() + EPS)
    return p


def _run(optimizer, params, grads_per_step):
    for grads in grads_per_step:
        for p, g in zip(params, grads):
            p.grad = g.clone()
        optimizer.step()


def test_adamw_is_fused_on_cpu_and_equals_hand_written_adamw_in_float64():
    g = torch.Generator().manual_seed(0)
    p0 = [torch.randn(7, 5, generator=g, dtype=torch.float64) for _ in range(3)]
    grads = [[torch.randn(7, 5, generator=g, dtype=torch.float64) for _ in p0] for _ in range(4)]
    params = [p.clone().requires_grad_() for p in p0]
    opt = adamw(params, LR)
    assert opt.param_groups[0]["fused"] is True
    _run(opt, params, grads)
    for i, p in enumerate(params):
        want = _reference_steps(p0[i], [step[i] for step in grads])
        torch.testing.assert_close(p.detach(), want, rtol=0, atol=1e-12)
    # step 1 in closed form: bias correction makes the update lr · g / (|g| + eps)
    one = [p.clone().requires_grad_() for p in p0]
    _run(adamw(one, LR), one, grads[:1])
    torch.testing.assert_close(one[0].detach(), p0[0] - LR * grads[0][0] / (grads[0][0].abs() + EPS),
                               rtol=0, atol=1e-12)


def test_adamw_resumes_from_a_per_tensor_optimizer_checkpoint():
    """Checkpoints written before the fused optimizer load into it and continue the same run."""
    g = torch.Generator().manual_seed(1)
    p0 = torch.randn(6, generator=g, dtype=torch.float64)
    grads = [[torch.randn(6, generator=g, dtype=torch.float64)] for _ in range(5)]
    old = [p0.clone().requires_grad_()]
    per_tensor = torch.optim.AdamW(old, lr=LR, weight_decay=0.0, foreach=False)
    _run(per_tensor, old, grads[:2])
    resumed = [old[0].detach().clone().requires_grad_()]
    opt = adamw(resumed, LR)
    opt.load_state_dict(per_tensor.state_dict())
    _run(opt, resumed, grads[2:])
    torch.testing.assert_close(resumed[0].detach(), _reference_steps(p0, [s[0] for s in grads]),
                               rtol=0, atol=1e-12)


def test_adamw_falls_back_where_there_is_no_fused_kernel():
    opt = adamw([torch.zeros(3, dtype=torch.complex64, requires_grad=True),
                 torch.zeros(3, requires_grad=True)], LR)
    assert not opt.param_groups[0]["fused"]
