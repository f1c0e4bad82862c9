"""Adam over many small parameters as one flat tensor.

DiVAE's networks are small: a training step of the default model takes about 2 ms, and
torch's Adam spends a good share of that in Python, looping over 13 to 20 parameter
tensors to collect their state, update them and clear their gradients. Here the
parameters become views into one flat buffer, their gradients are gathered into one
flat gradient, and a single fused Adam update runs on it: the same arithmetic as
``torch.optim.Adam`` element by element, with one tensor to loop over instead of many.

With ``fused=True`` the update calls torch's fused Adam kernel (``torch._fused_adam_``,
the one ``torch.optim.Adam(fused=True)`` runs) directly, with the optimiser's state held
here: ``Optimizer.step``'s bookkeeping around that one kernel call (hooks, profiling
scopes, grouping by device) cost about 30 of its 45 microseconds per step on 2 cores,
and a fit takes hundreds of thousands of steps. Where that kernel does not run (torch
before 2.4 has it for CUDA only; a private function may also change its signature), a
trial call on one number says so at construction, and ``torch.optim.Adam`` (not fused)
does the update instead.
"""

import torch


class FlatAdam:
    """Adam on ``params`` as one tensor: torch's fused Adam kernel where it runs (and
    ``fused`` is asked for), else ``torch.optim.Adam``.

    On construction, each parameter's data becomes a view into one flat buffer (the
    values are unchanged), so the update of the buffer is the update of every
    parameter. ``step`` reads the parameters' gradients and gathers them into the
    flat gradient.
    Call :meth:`release` when training ends, which gives every parameter its own
    storage again (safetensors refuses tensors that share memory).

    The update writes into the flat buffer, so the parameters' own version counters do
    not move: autograd cannot tell that a graph built before a step saw the old values.
    Build a fresh graph after every step (as the training loop does), never reuse one.

    Parameters
    ----------
    params : iterable of torch.nn.Parameter
        Same device and dtype.
    lr : float
        Adam's learning rate.
    fused : bool
        Use torch's fused Adam kernel.
    """

    def __init__(self, params, lr, fused=False):
        self.params = [p for p in params]
        kinds = {(p.dtype, p.device) for p in self.params}
        if len(kinds) != 1:
            raise ValueError(
                "FlatAdam needs at least one parameter, all of one dtype and device; got "
                f"{len(self.params)} parameters of {sorted(map(str, kinds))}."
            )
        with torch.no_grad():
            flat = torch.cat([p.detach().reshape(-1) for p in self.params])
        offset = 0
        for p in self.params:
            p.data = flat[offset : offset + p.numel()].view_as(p)
            offset += p.numel()
        self.flat = torch.nn.Parameter(flat)
        self._values = flat  # the same storage, outside autograd: the kernel updates it
        self.lr = lr
        self.direct = fused and _fused_kernel_runs(flat)
        self.optimizer = None
        if self.direct:  # Adam's state, as torch.optim.Adam(fused=True) keeps it
            self.exp_avg = torch.zeros_like(flat)
            self.exp_avg_sq = torch.zeros_like(flat)
            self.step_count = torch.zeros((), dtype=torch.float32, device=flat.device)
        else:
            self.optimizer = torch.optim.Adam([self.flat], lr=lr)

    def zero_grad(self, set_to_none=True):
        """Forget the parameters' gradients (autograd then writes fresh ones)."""
        for p in self.params:
            p.grad = None

    def step(self):
        """One Adam update of every parameter from its gradient.

        A parameter without a gradient (it took no part in the loss) stays where it
        is, as with torch's Adam; unlike there, its moments decay as if its gradient
        were zero and its step count goes on, since they are shared.
        """
        grads = [p.grad for p in self.params]
        missing = [p for p, g in zip(self.params, grads) if g is None]
        if missing:
            grads = [torch.zeros_like(p) if g is None else g for p, g in zip(self.params, grads)]
        self.flat.grad = torch.cat([g.reshape(-1) for g in grads])
        kept = [(p, p.detach().clone()) for p in missing]
        if self.direct:
            self.step_count.add_(1)
            _fused_adam(self._values, self.flat.grad, self.exp_avg, self.exp_avg_sq,
                        self.step_count, self.lr)
        else:
            self.optimizer.step()
        with torch.no_grad():
            for p, value in kept:
                p.copy_(value)

    def state_dict(self):
        """Adam's state (moments and step count), to carry it over to a rebuilt optimiser."""
        if self.direct:
            return {"exp_avg": self.exp_avg.clone(), "exp_avg_sq": self.exp_avg_sq.clone(),
                    "step_count": self.step_count.clone()}
        return {"adam": self.optimizer.state_dict()}

    def load_state_dict(self, state):
        """Take over the state of :meth:`state_dict` from an optimiser of the same
        parameters (in the same order) and the same kind."""
        with torch.no_grad():
            if self.direct and "exp_avg" in state:
                self.exp_avg.copy_(state["exp_avg"])
                self.exp_avg_sq.copy_(state["exp_avg_sq"])
                self.step_count.copy_(state["step_count"])
            elif not self.direct and "adam" in state:
                self.optimizer.load_state_dict(state["adam"])
            else:
                raise ValueError("the saved optimiser state is of another kind of Adam.")

    def release(self):
        """Give every parameter its own storage again (call when training ends)."""
        with torch.no_grad():
            for p in self.params:
                p.data = p.data.clone()


def _fused_adam(values, grad, exp_avg, exp_avg_sq, step_count, lr):
    """One update by torch's fused Adam kernel, with torch's defaults (betas 0.9 and
    0.999, eps 1e-8, no weight decay), as ``torch.optim.Adam(fused=True)`` calls it."""
    torch._fused_adam_(
        [values], [grad], [exp_avg], [exp_avg_sq], [], [step_count], amsgrad=False,
        lr=lr, beta1=0.9, beta2=0.999, weight_decay=0.0, eps=1e-8, maximize=False,
        grad_scale=None, found_inf=None,
    )


def _fused_kernel_runs(like):
    """Whether torch's fused Adam kernel runs on tensors like ``like`` (its dtype and
    device): one trial update of one number."""
    if not hasattr(torch, "_fused_adam_"):
        return False
    one = torch.zeros(1, dtype=like.dtype, device=like.device)
    try:
        _fused_adam(one.clone(), one.clone(), one.clone(), one.clone(),
                    torch.ones((), dtype=torch.float32, device=like.device), 1e-3)
    except (RuntimeError, NotImplementedError, TypeError):
        return False
    return True
