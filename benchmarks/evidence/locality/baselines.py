"""The baselines PandA's edits are compared with, as pure functions on tensors.

- SeFa (Shen & Zhou, CVPR 2021, "Closed-Form Factorization of Latent Semantics in GANs"):
  latent directions from the weight of the first layer alone.
- GANSpace (Härkönen et al., NeurIPS 2020): PCA of an early layer's activations over sampled
  latents, regressed back to latent directions.
- k-means parts (Collins et al., CVPR 2020, "Editing in Style"): clusters of a layer's channel
  fibres, whose per-sample assignments are masks and whose frequencies are global parts.

``latents: (N, ...)`` are flattened to ``(N, D)`` where directions are found, and a direction
``(D,)`` is reshaped back to one latent's shape by :func:`edit_latents`. ``Z: (N, C, H, W)`` are
activations at a layer. Directions are unit vectors, each with its largest entry positive (an
eigenvector's sign is arbitrary; fixing it makes them reproducible).
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import Tensor, nn

from panda_lightning.functional.factorization import largest_entries_positive
from panda_lightning.functional.validation import check_float, check_int


def _flatten_samples(name: str, tensor: Tensor) -> Tensor:
    if tensor.ndim < 2:
        raise ValueError(f"{name} has shape {tuple(tensor.shape)}; it must be (N, ...), one row per sample.")
    return tensor.flatten(1)


# -- SeFa ------------------------------------------------------------------------------------


def latent_weight(module: nn.Module) -> Tensor:
    """The matrix ``W: (D, F)`` with ``module(z).flatten() = z W + b`` for one latent ``z: (D,)``.

    ``nn.Linear(D, F)``: its weight transposed. ``nn.ConvTranspose2d(D, C, k)`` applied to a
    ``(D, 1, 1)`` latent (the DCGAN's first layer): its weight ``(D, C, k, k)`` as ``(D, C k k)``,
    cropped by the padding as the output is. The bias does not matter to the directions.
    """
    if isinstance(module, nn.Linear):
        return module.weight.detach().T
    if isinstance(module, nn.ConvTranspose2d):
        if module.groups != 1 or module.dilation != (1, 1):
            raise ValueError(
                f"latent_weight needs a ConvTranspose2d with groups=1 and dilation=1; this one has "
                f"groups={module.groups}, dilation={module.dilation}."
            )
        top, left = module.padding
        height, width = module.kernel_size
        weight = module.weight.detach()[:, :, top : height - top, left : width - left]
        # output_padding adds zero rows and columns: no change to W^T W, so it is left out.
        return rearrange(weight, "d c h w -> d (c h w)")
    raise TypeError(
        f"latent_weight takes the layer that acts on the latent, an nn.Linear or an nn.ConvTranspose2d "
        f"(on a (D, 1, 1) latent); got {type(module).__name__}."
    )


def sefa_directions(weight: Tensor, num_directions: int, normalise_columns: bool = False) -> Tensor:
    """SeFa's directions: the top eigenvectors of ``W W^T``, the latent-space Gram matrix.

    Moving ``z`` by a unit ``n`` moves the first layer's output by ``n W``, so the directions
    that move it most maximise ``n^T W W^T n`` (SeFa, Eq. 5-6; the paper writes the weight as
    ``A = W^T: (F, D)`` and the matrix as ``A^T A``). Only the first layer is used; later
    layers (the DCGAN's BatchNorm and ReLU) are ignored, as in the paper.

    Args:
        weight: ``W: (D, F)`` from :func:`latent_weight`.
        num_directions: how many, from 1 to ``D``.
        normalise_columns: scale each of the ``F`` outputs' weights to unit norm first, as the
            official implementation does (it is not in the paper).

    Returns:
        ``(num_directions, D)`` orthonormal rows, by eigenvalue, largest first.
    """
    if weight.ndim != 2:
        raise ValueError(f"weight has shape {tuple(weight.shape)}; it must be (D, F) from latent_weight.")
    latent_dim = weight.shape[0]
    check_int("num_directions", num_directions, low=1, high=latent_dim, why=f"the latent has D = {latent_dim} dimensions")
    weight = weight.double()
    if normalise_columns:
        weight = weight / weight.norm(dim=0, keepdim=True).clamp_min(torch.finfo(weight.dtype).tiny)
    _, eigenvectors = torch.linalg.eigh(weight @ weight.T)  # ascending
    return largest_entries_positive(eigenvectors.flip(1)[:, :num_directions].T)


# -- GANSpace --------------------------------------------------------------------------------


def ganspace_directions(latents: Tensor, activations: Tensor, num_directions: int) -> Tensor:
    """GANSpace's latent directions, from all the samples at once.

    The activations ``y_i`` are reduced by PCA to ``x_i = V^T (y_i - mu)`` (the top
    ``num_directions`` principal components ``V``), and the latent basis ``U: (D, k)`` is the
    least-squares fit ``min_U sum_i ||z_i - U x_i||^2`` (GANSpace Sec. 2, "latent basis by
    regression"); the directions are its columns, scaled to unit norm.

    Args:
        latents: ``z: (N, ...)``, flattened to ``(N, D)``.
        activations: ``y: (N, ...)`` at the chosen layer, flattened to ``(N, F)``.
        num_directions: ``k``, from 1 to ``min(D, F, N - 1)``.

    Returns:
        ``(num_directions, D)`` unit rows, by explained variance, largest first.
    """
    latents, activations = _check_ganspace_inputs(latents, activations)
    _check_ganspace_count(num_directions, latents.shape[1], activations.shape[1], latents.shape[0])
    centred = activations.double() - activations.double().mean(dim=0)
    _, _, right = torch.linalg.svd(centred, full_matrices=False)
    coordinates = centred @ right[:num_directions].T  # x_i: (N, k)
    basis = torch.linalg.lstsq(coordinates, latents.double()).solution  # U^T: (k, D)
    return largest_entries_positive(basis / basis.norm(dim=1, keepdim=True))


def _check_ganspace_inputs(latents: Tensor, activations: Tensor) -> tuple[Tensor, Tensor]:
    latents = _flatten_samples("latents", latents)
    activations = _flatten_samples("activations", activations)
    if latents.shape[0] != activations.shape[0]:
        raise ValueError(
            f"latents hold {latents.shape[0]} samples and activations {activations.shape[0]}; they must be the same samples."
        )
    return latents, activations


def _check_ganspace_count(num_directions: int, latent_dim: int, num_features: int, num_samples: int) -> None:
    largest = min(latent_dim, num_features, num_samples - 1)
    check_int(
        "num_directions",
        num_directions,
        low=1,
        high=max(largest, 0),
        why=f"at most the latent's D = {latent_dim} dimensions, the activations' F = {num_features} and the "
        f"samples less one, N - 1 = {num_samples - 1}",
    )


def ganspace_sums(latents: Tensor, activations: Tensor) -> dict[str, Tensor]:
    """The sums :class:`GANSpace` accumulates over one batch, in float64: the count, ``sum z``,
    ``sum y``, ``sum y y^T: (F, F)`` and ``sum z y^T: (D, F)``. Sums, so that batches and
    devices add up exactly."""
    latents, activations = _check_ganspace_inputs(latents, activations)
    latents, activations = latents.double(), activations.double()
    return {
        "count": torch.tensor(latents.shape[0], dtype=torch.float64, device=latents.device),
        "latent_sum": latents.sum(dim=0),
        "activation_sum": activations.sum(dim=0),
        "scatter": activations.T @ activations,
        "cross": latents.T @ activations,
    }


def ganspace_from_sums(sums: dict[str, Tensor], num_directions: int) -> Tensor:
    """:func:`ganspace_directions` from the sums of :func:`ganspace_sums`, in one pass.

    With ``Y_c`` the centred activations, ``V`` the top eigenvectors of ``Y_c^T Y_c`` (eigenvalues
    ``Lambda``) and ``X = Y_c V``, the least-squares ``U = (Z^T X)(X^T X)^{-1} = Z^T Y_c V Lambda^{-1}``,
    and ``Z^T Y_c = sum z y^T - (sum z) mu^T``: no second pass over the samples is needed.
    """
    count = int(sums["count"].item())
    latent_dim, num_features = sums["cross"].shape
    _check_ganspace_count(num_directions, latent_dim, num_features, count)
    mean = sums["activation_sum"] / count
    scatter = sums["scatter"] - count * torch.outer(mean, mean)
    cross = sums["cross"] - torch.outer(sums["latent_sum"], mean)
    eigenvalues, eigenvectors = torch.linalg.eigh(scatter)  # ascending
    top = eigenvectors.flip(1)[:, :num_directions]
    basis = (cross @ top / eigenvalues.flip(0)[:num_directions]).T  # U^T: (k, D)
    return largest_entries_positive(basis / basis.norm(dim=1, keepdim=True))


class GANSpace:
    """GANSpace directions accumulated batch by batch (memory ``F^2 + D F`` float64, whatever ``N``).

    Example:
        >>> ganspace = GANSpace()
        >>> for _ in range(4):
        ...     z = torch.randn(64, 10)
        ...     ganspace.update(z, z @ torch.ones(10, 20))
        >>> ganspace.compute(1).shape
        torch.Size([1, 10])
    """

    def __init__(self):
        self.sums: dict[str, Tensor] | None = None

    def update(self, latents: Tensor, activations: Tensor) -> None:
        batch = ganspace_sums(latents, activations)
        if self.sums is None:
            self.sums = batch
            return
        if batch["cross"].shape != self.sums["cross"].shape:
            raise ValueError(
                f"this batch has D, F = {tuple(batch['cross'].shape)}; the earlier ones had {tuple(self.sums['cross'].shape)}."
            )
        for name, value in batch.items():
            self.sums[name] += value

    def compute(self, num_directions: int) -> Tensor:
        """``(num_directions, D)`` unit directions from every sample so far."""
        if self.sums is None:
            raise RuntimeError("GANSpace.compute before any update: call update(latents, activations) first.")
        return ganspace_from_sums(self.sums, num_directions)


# -- k-means parts ---------------------------------------------------------------------------


def channel_fibres(Z: Tensor) -> Tensor:
    """The ``C``-dimensional fibre at every sample and position: ``(N, C, H, W) -> (N H W, C)``."""
    _check_activations(Z)
    return rearrange(Z, "n c h w -> (n h w) c")


def _check_activations(Z: Tensor) -> None:
    if Z.ndim != 4:
        raise ValueError(f"Z has shape {tuple(Z.shape)}; it must be activations (N, C, H, W).")


def _unit_rows(points: Tensor) -> Tensor:
    return points / points.norm(dim=1, keepdim=True).clamp_min(torch.finfo(points.dtype).tiny)


def _assign(points: Tensor, centroids: Tensor, spherical: bool) -> Tensor:
    if spherical:
        return (_unit_rows(points) @ centroids.T).argmax(dim=1)
    return torch.cdist(points, centroids).argmin(dim=1)


def _kmeans_plus_plus(points: Tensor, num_clusters: int, generator: torch.Generator | None) -> Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): each new centre drawn with probability
    proportional to the squared distance to the nearest centre so far."""
    first = torch.randint(points.shape[0], (1,), generator=generator, device=points.device)
    centroids = [points[first[0]]]
    nearest = (points - centroids[0]).square().sum(dim=1)
    for _ in range(1, num_clusters):
        if nearest.sum() > 0:
            index = torch.multinomial(nearest, 1, generator=generator)[0]
        else:  # every point is already a centre: any will do
            index = torch.randint(points.shape[0], (1,), generator=generator, device=points.device)[0]
        centroids.append(points[index])
        nearest = torch.minimum(nearest, (points - points[index]).square().sum(dim=1))
    return torch.stack(centroids)


def kmeans(
    points: Tensor,
    num_clusters: int,
    iterations: int = 50,
    generator: torch.Generator | None = None,
    spherical: bool = False,
) -> Tensor:
    """Lloyd's k-means from k-means++ seeds; stops early once no assignment changes.

    Args:
        points: ``(M, C)``, such as :func:`channel_fibres` of a layer's activations.
        num_clusters: ``K``, from 1 to ``M``.
        iterations: at most this many assignment-update rounds, at least 1.
        generator: seeds the k-means++ draws (the same seed, the same clusters).
        spherical: cluster directions (cosine similarity, unit centroids), as Collins et al.
            do; the points are scaled to unit norm first.

    Returns:
        Centroids ``(K, C)``. A cluster left empty keeps its centroid.
    """
    if points.ndim != 2:
        raise ValueError(f"points has shape {tuple(points.shape)}; it must be (M, C), one point per row.")
    check_int("num_clusters", num_clusters, low=1, high=points.shape[0], why=f"there are M = {points.shape[0]} points")
    check_int("iterations", iterations, low=1)
    if spherical:
        points = _unit_rows(points)
    centroids = _kmeans_plus_plus(points, num_clusters, generator)
    if spherical:
        centroids = _unit_rows(centroids)
    assignment = None
    for _ in range(iterations):
        new_assignment = _assign(points, centroids, spherical)
        if assignment is not None and torch.equal(new_assignment, assignment):
            break
        assignment = new_assignment
        sums = torch.zeros_like(centroids).index_add_(0, assignment, points)
        counts = torch.bincount(assignment, minlength=num_clusters)
        filled = counts > 0
        centroids = centroids.clone()
        centroids[filled] = sums[filled] / counts[filled, None].to(points)
        if spherical:
            centroids = _unit_rows(centroids)
    return centroids


def cluster_masks(Z: Tensor, centroids: Tensor, spherical: bool = False) -> Tensor:
    """Each sample's parts: the one-hot cluster of the fibre at each position.

    Args:
        Z: activations ``(N, C, H, W)``.
        centroids: ``(K, C)`` from :func:`kmeans` (with the same ``spherical``).

    Returns:
        ``(N, K, H, W)`` in ``{0, 1}``, one cluster per position; ``masks[:, k]`` is a per-sample
        mask ``(N, H, W)`` that :func:`panda_lightning.functional.editing.local_edit` takes.
    """
    _check_activations(Z)
    if centroids.ndim != 2 or centroids.shape[1] != Z.shape[1]:
        raise ValueError(
            f"centroids has shape {tuple(centroids.shape)}; it must be (K, C) with the activations' C = {Z.shape[1]}."
        )
    samples, _, height, width = Z.shape
    assignment = _assign(channel_fibres(Z), centroids.to(Z), spherical)
    one_hot = torch.nn.functional.one_hot(assignment, centroids.shape[0]).to(Z.dtype)
    return rearrange(one_hot, "(n h w) k -> n k h w", n=samples, h=height, w=width)


def cluster_parts(masks: Tensor) -> Tensor:
    """Global parts ``(H W, K)``: how often each position falls in each cluster over the samples,
    in ``[0, 1]``, laid out as PandA's parts ``P`` so that
    :func:`panda_lightning.functional.editing.part_mask` turns a column into a mask."""
    if masks.ndim != 4:
        raise ValueError(f"masks has shape {tuple(masks.shape)}; it must be (N, K, H, W) from cluster_masks.")
    return rearrange(masks.mean(dim=0), "k h w -> (h w) k")


# -- editing along a latent direction --------------------------------------------------------


def edit_latents(latents: Tensor, direction: Tensor, alpha: float) -> Tensor:
    """``z + alpha n`` for every sample: ``latents (N, ...)``, ``direction`` with ``prod(...)``
    entries (a row of the functions above), reshaped to one latent's shape (``(100, 1, 1)`` for
    the face DCGAN)."""
    if latents.ndim < 2:
        raise ValueError(f"latents has shape {tuple(latents.shape)}; it must be (N, ...), one latent per sample.")
    latent_shape = latents.shape[1:]
    if direction.numel() != math.prod(latent_shape):
        raise ValueError(
            f"direction has {direction.numel()} entries (shape {tuple(direction.shape)}); one latent "
            f"{tuple(latent_shape)} has {math.prod(latent_shape)}."
        )
    alpha = check_float("alpha", alpha)
    return latents + alpha * direction.reshape(latent_shape).to(latents)
