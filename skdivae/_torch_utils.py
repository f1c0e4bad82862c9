"""Small helpers that keep torch out of the estimator code."""

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import torch
from sklearn.utils import gen_batches


def resolve_device(device):
    """Map ``"cpu" | "cuda" | "auto"`` to a :class:`torch.device`, with a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but torch sees no CUDA device; use 'cpu'.")
    return torch.device(device)


def as_tensor(X, dtype=torch.float32, device="cpu"):
    """Copy a numpy array into a tensor (copying also handles read-only memmaps; views
    with negative strides, such as ``X[::-1]``, are made contiguous first)."""
    return torch.tensor(np.ascontiguousarray(X), dtype=dtype, device=device)


#: Scoring works in chunks whose widest intermediate holds about this many numbers (8 MiB in
#: float64): small enough to stay in cache, large enough to amortise each operation.
CHUNK_ELEMENTS = 2**20
#: Rows per chunk at least (fewer chunks, fewer calls), unless a chunk of that many rows
#: would hold more than ``MAX_CHUNK_ELEMENTS`` numbers (128 MiB in float64): with a very
#: wide latent space the ELBO's 2L sigma points through a 2L-wide encoder output make a
#: row cost about 4 L^2 numbers.
MIN_CHUNK_ROWS, MAX_CHUNK_ELEMENTS = 256, 16 * CHUNK_ELEMENTS


#: The most numbers that scoring one row with the ELBO may need (its 2L sigma points
#: through the widest layer or the features, or the prior's log-density, K * L numbers for
#: a K-component mixture, at those points where its KL is estimated from draws): 2**25,
#: 256 MiB in float64. A network beyond it is refused when it is built for a fit and when
#: it is loaded, since chunks cannot go below one row.
MAX_ROW_NUMBERS = 2**25


def row_numbers(module, points=1):
    """Numbers per row in the widest intermediate of ``module``'s scoring with ``points``
    network passes per row: the layers and features at every point; the prior's
    log-density at every point only where its KL takes draws (else once per row)."""
    widths = [m.out_features for m in module.modules() if isinstance(m, torch.nn.Linear)]
    widths.append(int(module.center.shape[0]))
    prior_points = int(points) if module.prior.kl_draws() > 0 else 1
    prior_width = module.prior.scoring_width(int(module.encoder.n_latent))
    return max(int(points) * max(int(w) for w in widths), prior_points * int(prior_width))


def elbo_row_numbers(module):
    """:func:`row_numbers` for the ELBO, whose decoder runs at 2L sigma points per row."""
    return row_numbers(module, 2 * int(module.encoder.n_latent))


def chunk_rows(module, points=1):
    """Rows per scoring chunk for ``module``: ``CHUNK_ELEMENTS`` over the widest layer times
    the network passes per row (``points``), within [256, 16384]; below 256 (down to one
    row) only where 256 rows would hold more than ``MAX_CHUNK_ELEMENTS`` numbers."""
    per_row = row_numbers(module, points)
    rows = CHUNK_ELEMENTS // per_row
    if rows < MIN_CHUNK_ROWS:
        rows = min(MIN_CHUNK_ROWS, max(1, MAX_CHUNK_ELEMENTS // per_row))
    return int(min(16384, rows))


def batched_no_grad(fn, X, batch_size=4096):
    """Apply ``fn`` to float64 tensors of ``X`` in chunks; concatenate float64 numpy output."""
    outputs = []
    with torch.no_grad():
        for batch in gen_batches(X.shape[0], batch_size):
            outputs.append(fn(as_tensor(X[batch], dtype=torch.float64)).numpy())
    return np.concatenate(outputs, axis=0)


#: Rows per chunk when chunks are scored side by side (``n_threads="auto"``). Fixed, so
#: that the chunks, and with them the last bits of every score, depend neither on the
#: number of workers nor on how busy the machine is.
PARALLEL_CHUNK_ROWS = 1024


def available_cpus():
    """CPUs this process may run on (its affinity where the OS says, else the count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def parallel_no_grad(make_fn, X, batch_size, workers):
    """:func:`batched_no_grad` with the chunks spread over ``workers`` threads, each
    running ``make_fn()`` (one per thread, for per-thread buffers) with one torch thread.

    Each chunk is computed alone, so the output is bit-identical to the serial
    ``batched_no_grad(make_fn(), X, batch_size)`` with one torch thread, whatever the
    number of workers. A core kept busy by another process only slows the chunks that
    land on it, whereas torch's own threads wait for the slowest one at every
    operation (5-15 times slower scoring with one of two cores busy).
    """
    batches = list(gen_batches(X.shape[0], batch_size))
    with torch_threads(1):
        if workers <= 1 or len(batches) <= 1:
            return batched_no_grad(make_fn(), X, batch_size)
        local = threading.local()

        def run(batch):
            fn = getattr(local, "fn", None)
            if fn is None:
                fn = local.fn = make_fn()
            with torch.no_grad():  # grad mode is per thread
                return fn(as_tensor(X[batch], dtype=torch.float64)).numpy()

        # Threads started here inherit the one torch thread set above.
        with ThreadPoolExecutor(min(workers, len(batches))) as pool:
            outputs = list(pool.map(run, batches))
    return np.concatenate(outputs, axis=0)


_THREADS_LOCK = threading.Lock()
_THREADS_STATE = {"depth": 0, "outer": None}
#: How many blocks the current thread is inside (its own nesting).
_THREAD_DEPTH = threading.local()


_DTYPE_LOCK = threading.Lock()
_DTYPE_STATE = {"depth": 0, "outer": None}


@contextmanager
def training_mode():
    """Train as DiVAE expects whatever the caller's torch settings: gradients on (inside a
    caller's ``torch.no_grad()``, ``inference_mode()`` or ``set_grad_enabled(False)``) and
    float32 as torch's default dtype (the networks are built and trained in float32; a
    caller's ``set_default_dtype(torch.float64)`` would build float64 layers). The
    caller's settings come back on exit. torch's default dtype is one setting for the whole
    process: while fits run (in any thread), other threads see float32 too, only when it
    was changed; the last fit to finish restores it."""
    with _DTYPE_LOCK:
        if _DTYPE_STATE["depth"] == 0:
            _DTYPE_STATE["outer"] = torch.get_default_dtype()
        _DTYPE_STATE["depth"] += 1
        if torch.get_default_dtype() != torch.float32:
            torch.set_default_dtype(torch.float32)
    try:
        with torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        with _DTYPE_LOCK:
            _DTYPE_STATE["depth"] -= 1
            if _DTYPE_STATE["depth"] == 0 and _DTYPE_STATE["outer"] != torch.float32:
                torch.set_default_dtype(_DTYPE_STATE["outer"])


@contextmanager
def torch_threads(n_threads):
    """Run the block with ``n_threads`` torch intra-op threads (``None``: as they are).

    The calling thread's setting is restored on exit when it is alone in a
    block. torch (with OpenMP) keeps one setting per thread plus a default
    that threads started later pick up (the last value set by any thread);
    with several blocks running at once in different threads, the last one to
    leave sets the value the first one found again, so concurrent fits leave
    that default as it was. A thread that leaves its own outermost block while
    blocks of other threads are still open takes that same value rather than
    its own earlier count: that count may be the one thread it picked up while
    another fit held it, and it must not become the default of a later round
    of blocks (speed only: results do not depend on the count).
    """
    if n_threads is None:
        yield
        return
    # More threads than cores only slow the small networks down (and a number read from
    # a file must not spawn hundreds of threads).
    n_threads = max(1, min(int(n_threads), os.cpu_count() or 1))
    with _THREADS_LOCK:
        before = torch.get_num_threads()
        if _THREADS_STATE["depth"] == 0:
            _THREADS_STATE["outer"] = before
        _THREADS_STATE["depth"] += 1
        _THREAD_DEPTH.value = getattr(_THREAD_DEPTH, "value", 0) + 1
        if before != n_threads:
            torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _THREADS_STATE["depth"] -= 1
            _THREAD_DEPTH.value -= 1
            last = _THREADS_STATE["depth"] == 0
            restore = _THREADS_STATE["outer"] if last or _THREAD_DEPTH.value == 0 else before
            if last or torch.get_num_threads() != restore:
                torch.set_num_threads(restore)  # the last one also resets the default
