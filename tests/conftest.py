"""Test-session settings and the `device` fixture.

Torch runs tests' small batched ops on one intra-op thread: on a 2-core machine that shares its cores
(CI, developer laptops running other work), OpenMP's spinning worker threads made a 0.6 s sampler test
take 54 s. Results do not depend on the thread count; only speed does.

`device`: a test that takes it runs once per entry of `DEVICES`, on cpu and on cuda; the cuda cases carry the
`cuda` marker and are skipped where torch sees no GPU, so the default suite costs the same without one.
`benchmarks/gpu_check.sh` runs them with `-m cuda` on a GPU machine.
"""

import pytest
import torch

torch.set_num_threads(1)

DEVICES = (
    "cpu",
    pytest.param(
        "cuda",
        marks=(pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")),
    ),
)


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    return torch.device(request.param)
