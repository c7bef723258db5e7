"""Test-session settings.

Torch runs tests' small batched ops on one intra-op thread: on a 2-core machine that shares its cores
(CI, developer laptops running other work), OpenMP's spinning worker threads made a 0.6 s sampler test
take 54 s. Results do not depend on the thread count; only speed does.
"""

import torch

torch.set_num_threads(1)
