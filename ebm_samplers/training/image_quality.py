"""Quality of an energy trained on 8x8 digits, without a trained classifier: MMD, KSD, class coverage, AIS NLL.

* MMD^2 of model samples to held-out digits (`diagnostics.mmd`), beside two references on the same scale:
  uniform noise (what training starts from) and training digits (the sampling-noise floor).
* KSD (`evaluation.data_ksd` / `sample_ksd`): of held-out digits under the model's score (fit to data) and of
  the model samples under it (did the chains reach the model).
* Class coverage by nearest neighbour: each model sample takes the label of its nearest held-out digit
  (Euclidean distance over the 64 pixels); the histogram of those labels is compared with the held-out class
  frequencies by total variation, TV = 1/2 sum_c |p_c - q_c|. It is a labelling by nearest neighbour, not a
  classifier's verdict: a blotch is labelled too, so the mean nearest-neighbour distance is reported beside it,
  and the same figures for as many training digits give the floor that sampling alone produces.
* Test NLL by AIS (`ais.ais_nll`) on dequantised pixels: the 17 grey levels lie 1/8 apart, so each test image
  gets uniform noise in its bin, x + u, u ~ U(-1/16, 1/16)^64, and the model is restricted to the box
  [-1 - 1/16, 1 + 1/16]^64 that holds every bin. Then -log P(bin of x) <= -log p(x + u) - 64 log(1/8) on
  average over u (Jensen; Theis, van den Oord & Bethge 2016), so

      bits/dim <= (NLL(x + u) + 64 log 8) / (64 log 2) = NLL(x + u) / (64 log 2) + 3

  bounds the discrete model's code length; uniform over the 17 levels is log2(17) = 4.09 bits/dim, and an
  independent-pixel model (per-pixel level frequencies of the training set, add-one smoothed) is the
  reference reported beside it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ebm_samplers.training.ais import UNRELIABLE_ESS_FRACTION, ais_nll
from ebm_samplers.training.evaluation import data_ksd, ksd_summary, mmd, sample_ksd

#: Grey levels of the bundled digits (0..16) and their spacing once mapped to [-1, 1].
N_LEVELS = 17
BIN_WIDTH = 2.0 / (N_LEVELS - 1)


def nearest_neighbour_labels(samples: Tensor, reference: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """(label of each sample's nearest reference image, the distance to it), Euclidean over all pixels."""
    distances = torch.cdist(samples.reshape(len(samples), -1).double(), reference.reshape(len(reference), -1).double())
    nearest = distances.min(1)
    return labels[nearest.indices], nearest.values


def class_coverage(samples: Tensor, reference: Tensor, labels: Tensor, n_classes: int = 10) -> dict:
    """Nearest-neighbour label histogram of `samples`, the reference's class frequencies, their TV distance."""
    assigned, distance = nearest_neighbour_labels(samples, reference, labels)
    histogram = torch.bincount(assigned, minlength=n_classes).double() / len(assigned)
    frequencies = torch.bincount(labels, minlength=n_classes).double() / len(labels)
    return {
        "nearest_label_fractions": [round(float(v), 4) for v in histogram],
        "reference_class_fractions": [round(float(v), 4) for v in frequencies],
        "total_variation": round(0.5 * float((histogram - frequencies).abs().sum()), 4),
        "mean_nearest_distance": round(float(distance.mean()), 4),
        "n_samples": len(samples),
    }


def independent_pixel_bits_per_dim(train: Tensor, test: Tensor) -> float:
    """Code length of `test` under per-pixel level frequencies of `train` (add-one smoothing), bits per pixel."""
    levels_train = ((train.reshape(len(train), -1) + 1) / BIN_WIDTH).round().long()
    levels_test = ((test.reshape(len(test), -1) + 1) / BIN_WIDTH).round().long()
    counts = torch.stack([torch.bincount(column, minlength=N_LEVELS) for column in levels_train.T]).double() + 1
    log_p = torch.log(counts / counts.sum(1, keepdim=True))  # (pixels, levels)
    picked = log_p.gather(1, levels_test.T)  # (pixels, n_test)
    return float(-picked.mean() / math.log(2))


def dequantised_ais_bits_per_dim(energy, train: Tensor, test: Tensor, generator: torch.Generator, **ais) -> dict:
    """The AIS test NLL of dequantised digits and the bits/dim bound it gives (see the module docstring)."""
    half = BIN_WIDTH / 2
    bounds = (-1.0 - half, 1.0 + half)

    def dequantise(x: Tensor) -> Tensor:
        return x + (torch.rand(x.shape, generator=generator, dtype=x.dtype) - 0.5) * BIN_WIDTH

    noisy_train, noisy_test = dequantise(train), dequantise(test)
    result = ais_nll(energy, noisy_test, data=noisy_train, bounds=bounds, generator=generator, **ais)
    dims = test[0].numel()
    scale = dims * math.log(2)
    return {
        "nll_nats_per_image": round(result.nll, 3),
        "standard_error_nats": round(result.standard_error, 3),
        "bits_per_dim_bound": round(result.nll / scale + math.log(1 / BIN_WIDTH) / math.log(2), 4),
        "bits_per_dim_standard_error": round(result.standard_error / scale, 4),
        "ais_effective_sample_size": round(result.ais.effective_sample_size, 1),
        # the same rule as the AIS warning: below it the NLL and its standard error mean nothing
        "ais_reliable": result.ais.effective_sample_size >= UNRELIABLE_ESS_FRACTION * result.ais.n_chains,
        "ais_chains": result.ais.n_chains,
        "ais_temperatures": result.ais.n_temperatures,
        "ais_acceptance_rate": round(result.ais.acceptance_rate, 3),
        "box": list(bounds),
    }


def image_quality(
    energy,
    samples: Tensor,
    train: Tensor,
    test: Tensor,
    test_labels: Tensor,
    generator: torch.Generator,
    *,
    n_mmd: int = 300,
    n_bootstrap: int = 200,
    ais: dict | None = None,
) -> dict:
    """Every figure of the module docstring for model `samples` of `energy` (a dict for a metrics JSON).

    `ais`: options for `ais_nll` (e.g. n_chains, n_temperatures); None skips the AIS NLL.
    """
    n = min(n_mmd, len(samples), len(test))
    noise = torch.rand(test.shape, generator=generator) * 2 - 1
    metrics: dict = {
        "mmd2_samples_vs_test": round(mmd(samples[:n], test[:n]), 5),
        "mmd2_uniform_noise_vs_test": round(mmd(noise[:n], test[:n]), 5),
        "mmd2_train_vs_test_reference": round(mmd(train[:n], test[:n]), 5),
        "mmd_points": n,
    }
    fit_ksd = data_ksd(energy, test, n_bootstrap=n_bootstrap, generator=generator)
    own_ksd = sample_ksd(energy, samples, n_bootstrap=n_bootstrap, generator=generator)
    metrics["ksd_test_data"] = ksd_summary(fit_ksd, 4)
    metrics["ksd_model_samples"] = ksd_summary(own_ksd, 4)
    metrics["class_coverage_nearest_test_digit"] = class_coverage(samples, test, test_labels)
    reference = train[torch.randperm(len(train), generator=generator)[: len(samples)]]
    metrics["class_coverage_train_reference"] = class_coverage(reference, test, test_labels)
    if ais is not None:
        metrics["test_nll_ais"] = dequantised_ais_bits_per_dim(energy, train, test, generator, **ais)
        metrics["independent_pixel_bits_per_dim"] = round(independent_pixel_bits_per_dim(train, test), 4)
    return metrics
