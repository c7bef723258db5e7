"""One thread for small steps: `energies._threads.is_small` decides once per run, and `sample()` applies it; the
same watch (`TensorSizes`) records the widest row, which decides whether a compiled step uses SIMD vectors."""

import pytest
import torch

import ebm_samplers
from energies import Gaussian, GaussianMixture, MLPEnergy, energy_and_grad
from energies._threads import PARALLEL_GRAIN, TensorSizes, is_small, torch_threads


def sizes(energy, position):
    with TensorSizes() as seen:
        energy_and_grad(energy, position)
    return seen


def largest_tensor(energy, position):
    return sizes(energy, position).elements


def test_a_step_is_small_when_no_tensor_of_an_energy_and_gradient_evaluation_reaches_the_grain():
    square = lambda x: x.square().sum(-1)  # noqa: E731
    cpu = torch.device("cpu")
    assert PARALLEL_GRAIN == 32_768
    assert is_small(largest_tensor(GaussianMixture(), torch.zeros(1000, 2)), cpu)
    assert largest_tensor(square, torch.zeros(16_383, 2)) == 32_766
    assert is_small(32_767, cpu) and not is_small(32_768, cpu) and not is_small(1, torch.device("meta"))
    assert largest_tensor(Gaussian(torch.zeros(100), torch.ones(100)), torch.zeros(1000, 100)) >= 100_000
    # a network decides by its hidden layers, not by its 2-D input: 1,000 x 64 activations
    network = MLPEnergy(2, hidden=(64, 64), generator=torch.Generator().manual_seed(0))
    assert largest_tensor(network, torch.zeros(1000, 2)) >= 64_000
    assert largest_tensor(network, torch.zeros(100, 2)) < PARALLEL_GRAIN


def test_the_widest_row_is_the_longest_last_dimension_of_a_tensor_with_rows():
    # the 2-D mixture's tensors are (chains, components, 2), (chains, 2) and (chains,): rows of at most 2 numbers;
    # a vector over chains alone has no rows, however long
    assert sizes(GaussianMixture(), torch.zeros(1000, 2)).widest_row == 2
    assert sizes(lambda x: x.square(), torch.zeros(1000)).widest_row == 0
    network = MLPEnergy(2, hidden=(48, 16), generator=torch.Generator().manual_seed(0))
    assert sizes(network, torch.zeros(10, 2)).widest_row == 48  # hidden layers decide, not the 2-D input
    # an input no operation produced (the chains' positions, noted by `run.start.init_state`) counts the same way
    noted = TensorSizes()
    noted.note(torch.zeros(5, 3))
    noted.note(torch.zeros(7))
    assert (noted.elements, noted.widest_row) == (15, 3)


def test_rows_narrower_than_one_simd_vector_compile_to_scalar_loops():
    from ebm_samplers._compiled_step import narrow_rows

    cpu = torch.device("cpu")
    # every x86 or ARM vector holds at least 4 float32 (128 bits) and at most 16 (AVX-512)
    assert narrow_rows(2, torch.float32, cpu) and narrow_rows(1, torch.float64, cpu)
    assert not narrow_rows(16, torch.float32, cpu) and not narrow_rows(8, torch.float64, cpu)
    assert not narrow_rows(0, torch.float32, cpu)  # no rows: loops run along the chains
    assert not narrow_rows(2, torch.float32, torch.device("meta"))  # TorchInductor's C++ is for the CPU only


def test_torch_threads_sets_the_count_for_the_block_and_restores_it():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before


@pytest.mark.parametrize("compile_step", [False, True])
def test_sample_runs_a_small_step_on_one_thread_and_gives_the_callers_count_back(compile_step):
    seen = []

    def mixture(x):
        seen.append(torch.get_num_threads())
        return GaussianMixture()(x)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        init = torch.zeros(8, 2)
        trace = ebm_samplers.sample(
            mixture, "mala", init=init, n_steps=5, warmup=0, step_size=0.1, progress=False, compile_step=compile_step
        )
        assert torch.get_num_threads() == 2
        assert trace.attrs["torch_threads"] == 1
        if not compile_step:  # compiled, the energy runs inside the graph: only the eager calls show
            assert seen[-5:] == [1] * 5  # the run's transitions
        large = ebm_samplers.sample(
            mixture, "mala", init=torch.zeros(20_000, 2), n_steps=2, warmup=0, step_size=0.1, progress=False
        )
        assert "torch_threads" not in large.attrs and seen[-1] == 2
    finally:
        torch.set_num_threads(before)


def test_an_energy_that_cannot_run_under_a_dispatch_mode_runs_plain_on_the_callers_threads():
    from torch.utils._python_dispatch import _get_current_dispatch_mode

    calls = []

    def picky(x):  # stands for an extension that refuses Python dispatch modes
        calls.append(1)
        if _get_current_dispatch_mode() is not None:
            raise RuntimeError("no dispatch modes here")
        return 0.5 * x.square().sum(-1)

    trace = ebm_samplers.sample(picky, "mala", init=torch.zeros(8, 2), n_steps=3, warmup=0, step_size=0.1)
    assert trace.draws.shape == (8, 3, 2) and "torch_threads" not in trace.attrs
    with pytest.raises(ValueError, match="boom"):  # a genuine error still reaches the user

        def broken(x):
            if x.requires_grad:
                raise ValueError("boom")
            return x.sum(-1)

        ebm_samplers.sample(broken, "mala", init=torch.zeros(8, 2), n_steps=3, warmup=0, step_size=0.1)
