"""A GRU over whole sequences with its per-step element-wise work fused in C (CPU, float32).

ATen's ``nn.GRU`` on the CPU runs every time step as ~10 small tensor ops and records each of
them for autograd (the chunks' backward alone is two ``cat`` per step). Here each step is one
BLAS matmul (h W_hh^T) and one pass of ``gru_kernels.c``; the backward is the same loop in
reverse, and the weight gradients are three matmuls over all steps at once.

The C file is compiled on first use with the system C compiler (``$CC``, else ``cc``) into
``$XDG_CACHE_HOME/rllib_softqmix`` (``~/.cache`` by default), keyed by the source, the flags
and the CPU. Without a compiler, on a GPU, for float64 or with ``RLLIB_SOFTQMIX_FUSED_GRU=0``
``gru_sequence`` runs ``nn.GRU`` itself: the same function up to float rounding (~1e-6).
"""

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional, Tuple

import torch
from torch import nn
from torch.autograd.function import once_differentiable

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("gru_kernels.c")
COMPILE_FLAGS = ("-O3", "-march=native", "-ffast-math", "-fopenmp-simd", "-shared", "-fPIC")
DISABLE_VARIABLE = "RLLIB_SOFTQMIX_FUSED_GRU"


def _cpu_signature() -> str:
    """The CPU's model and feature flags, so that a ``-march=native`` build on a shared home
    directory is never loaded on a different CPU."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return "\n".join(sorted({line for line in lines if line.startswith(("model name", "flags"))}))


@functools.lru_cache(maxsize=None)
def load_kernels() -> Optional[ctypes.CDLL]:
    """The compiled kernels, or None (logged once) where they cannot be built."""
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        logger.warning("fused GRU: no C compiler ($CC or cc) found; using nn.GRU")
        return None
    source = SOURCE.read_bytes()
    key = hashlib.sha256(b"\0".join([source, " ".join(COMPILE_FLAGS).encode(), compiler.encode(),
                                      _cpu_signature().encode()])).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rllib_softqmix"
    library = cache / f"gru_kernels_{key}.so"
    if not library.exists():
        cache.mkdir(parents=True, exist_ok=True)
        # Built beside the target and renamed, so that concurrent workers never load a partial file.
        with tempfile.NamedTemporaryFile(dir=cache, suffix=".so", delete=False) as partial:
            pass
        built = subprocess.run([compiler, *COMPILE_FLAGS, str(SOURCE), "-o", partial.name, "-lm"],
                               capture_output=True, text=True)
        if built.returncode != 0:
            os.unlink(partial.name)
            logger.warning("fused GRU: compiling %s failed (%s); using nn.GRU", SOURCE,
                           built.stderr.strip()[-500:])
            return None
        os.replace(partial.name, library)
    lib = ctypes.CDLL(str(library))
    int_, ptr = ctypes.c_int, ctypes.c_void_p
    lib.gru_forward_step.argtypes = [int_, int_] + [ptr] * 6
    lib.gru_backward_step.argtypes = [int_, int_] + [ptr] * 7
    lib.gru_forward_step.restype = lib.gru_backward_step.restype = None
    return lib


class _FusedGRUSequence(torch.autograd.Function):
    """x [T, M, H_in] (contiguous), h0 [M, H] -> (outputs [T, M, H], h_T [M, H])."""

    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh):
        lib = load_kernels()
        steps, rows, _ = x.shape
        hidden = weight_hh.shape[1]
        gi = torch.addmm(bias_ih, x.view(steps * rows, -1), weight_ih.t())
        states = x.new_empty(steps + 1, rows, hidden)  # h_0 .. h_T
        states[0] = h0
        gates = x.new_empty(steps, rows, 3 * hidden)  # r, z, n
        gh_n = x.new_empty(steps, rows, hidden)
        gh = x.new_empty(rows, 3 * hidden)
        weight_hh_t = weight_hh.t()
        big, small = rows * 3 * hidden * 4, rows * hidden * 4  # bytes per step
        gi_p, gh_p, states_p = gi.data_ptr(), gh.data_ptr(), states.data_ptr()
        gates_p, gh_n_p = gates.data_ptr(), gh_n.data_ptr()
        for t in range(steps):
            torch.addmm(bias_hh, states[t], weight_hh_t, out=gh)
            lib.gru_forward_step(rows, hidden, gi_p + t * big, gh_p, states_p + t * small,
                                 gates_p + t * big, gh_n_p + t * small, states_p + (t + 1) * small)
        ctx.save_for_backward(x, weight_ih, weight_hh, states, gates, gh_n)
        return states[1:], states[steps]

    @staticmethod
    @once_differentiable
    def backward(ctx, d_outputs, d_last):
        lib = load_kernels()
        x, weight_ih, weight_hh, states, gates, gh_n = ctx.saved_tensors
        steps, rows, _ = x.shape
        hidden = weight_hh.shape[1]
        d_outputs = d_outputs.contiguous()
        d_hidden = d_last.clone(memory_format=torch.contiguous_format)
        d_gi, d_gh = torch.empty_like(gates), torch.empty_like(gates)
        big, small = rows * 3 * hidden * 4, rows * hidden * 4
        states_p, gates_p, gh_n_p = states.data_ptr(), gates.data_ptr(), gh_n.data_ptr()
        d_out_p, d_gi_p, d_gh_p = d_outputs.data_ptr(), d_gi.data_ptr(), d_gh.data_ptr()
        for t in range(steps - 1, -1, -1):
            lib.gru_backward_step(rows, hidden, gates_p + t * big, gh_n_p + t * small,
                                  states_p + t * small, d_out_p + t * small, d_hidden.data_ptr(),
                                  d_gi_p + t * big, d_gh_p + t * big)
            d_hidden = torch.addmm(d_hidden, d_gh[t], weight_hh)
        d_gi, d_gh = d_gi.view(steps * rows, -1), d_gh.view(steps * rows, -1)
        d_x = torch.mm(d_gi, weight_ih).view_as(x)
        d_weight_ih = torch.mm(d_gi.t(), x.view(steps * rows, -1))
        d_weight_hh = torch.mm(d_gh.t(), states[:-1].view(steps * rows, hidden))
        return d_x, d_hidden, d_weight_ih, d_weight_hh, d_gi.sum(0), d_gh.sum(0)


def fused_gru_usable(x: torch.Tensor) -> bool:
    """Whether ``gru_sequence`` takes the fused path for ``x``."""
    return (os.environ.get(DISABLE_VARIABLE, "1") != "0" and x.device.type == "cpu"
            and x.dtype == torch.float32 and load_kernels() is not None)


def gru_sequence(rnn: nn.GRU, x: torch.Tensor, h0: torch.Tensor
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    """One-layer, time-major ``rnn`` over x [T, M, H_in] from h0 [M, H].

    Returns (outputs [T, M, H], h_T [M, H]); the same function as ``rnn(x, h0[None])``.
    """
    if not fused_gru_usable(x):
        outputs, last = rnn(x, h0.unsqueeze(0))
        return outputs, last[0]
    return _FusedGRUSequence.apply(x.contiguous(), h0.contiguous(), rnn.weight_ih_l0,
                                   rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0)
