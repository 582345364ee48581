"""The fused CPU GRU (core/fused_gru.py) computes nn.GRU's function and gradients, and the
process settings keep freed memory in the process."""

import resource
import shutil

import pytest
import torch
from torch import nn

from rllib_softqmix.core import fused_gru
from rllib_softqmix.core.fused_gru import gru_sequence, load_kernels
from rllib_softqmix.core.process import retain_freed_memory

needs_compiler = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler (cc)")


def outputs_and_gradients(rnn, x, h0, weights):
    outputs, last = gru_sequence(rnn, x, h0)
    loss = (outputs * weights[0]).sum() + (last * weights[1]).sum()
    gradients = torch.autograd.grad(loss, [x, h0, *rnn.parameters()])
    return [outputs.detach(), last.detach(), *gradients]


@needs_compiler
def test_kernels_compile_and_take_the_fused_path():
    assert load_kernels() is not None
    assert fused_gru.fused_gru_usable(torch.zeros(2, 3, 4))
    assert not fused_gru.fused_gru_usable(torch.zeros(2, 3, 4, dtype=torch.float64))


@needs_compiler
@pytest.mark.parametrize("steps,rows,input_dim,hidden", [(7, 5, 10, 16), (26, 96, 64, 64), (1, 3, 4, 8)])
def test_fused_gru_matches_nn_gru_values_and_gradients(monkeypatch, steps, rows, input_dim, hidden):
    torch.manual_seed(steps)
    rnn = nn.GRU(input_dim, hidden)
    x = torch.randn(steps, rows, input_dim, requires_grad=True)
    h0 = (0.5 * torch.randn(rows, hidden)).requires_grad_(True)
    weights = (torch.randn(steps, rows, hidden), torch.randn(rows, hidden))
    fused = outputs_and_gradients(rnn, x, h0, weights)
    monkeypatch.setenv(fused_gru.DISABLE_VARIABLE, "0")
    reference = outputs_and_gradients(rnn, x, h0, weights)
    names = ["outputs", "h_T", "d_x", "d_h0", "d_weight_ih", "d_weight_hh", "d_bias_ih", "d_bias_hh"]
    for name, mine, theirs in zip(names, fused, reference):
        assert mine.shape == theirs.shape, name
        scale = theirs.abs().max().item()
        assert (mine - theirs).abs().max().item() <= 1e-5 * max(scale, 1.0), name


def test_disabled_fused_path_is_nn_gru_itself(monkeypatch):
    monkeypatch.setenv(fused_gru.DISABLE_VARIABLE, "0")
    torch.manual_seed(0)
    rnn = nn.GRU(4, 6)
    x, h0 = torch.randn(5, 3, 4), torch.randn(3, 6)
    outputs, last = gru_sequence(rnn, x, h0)
    expected, expected_last = rnn(x, h0.unsqueeze(0))
    assert torch.equal(outputs, expected) and torch.equal(last, expected_last[0])


@pytest.mark.skipif(not retain_freed_memory(), reason="not glibc, or MALLOC_* thresholds set")
def test_freed_buffers_are_reused_without_page_faults():
    def faults_of_a_fresh_8_mib_buffer():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        torch.empty(2 << 20).fill_(1.0)  # allocated, written, freed
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    # 8 MiB is 2,048 pages, faulted in on every call by glibc's default (an mmap per call).
    # Kept blocks are reused; now and then other allocations take the freed block's place and
    # the heap grows again, so allow a few calls' worth.
    faults = [faults_of_a_fresh_8_mib_buffer() for _ in range(20)]
    assert sum(faults) <= 5 * 2048, faults
