"""BigGAN-deep of ``pytorch-pretrained-biggan``, class-conditional, with its truncation."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from panda_lightning.functional.validation import check_float
from panda_lightning.generators.adapters.imagenet import imagenet_index
from panda_lightning.generators.formats.weights import load_weights

BIGGAN_INSTALL = "pip install 'panda-lightning[biggan]'  (pytorch-pretrained-biggan==0.1.1 and scipy)"


class BigGAN(nn.Module):
    """BigGAN-deep (Brock et al., 2019) of ``pytorch-pretrained-biggan==0.1.1``.

    The conditioning travels in the latents, so the stream, edits and pictures treat it as any
    other generator: one latent is the noise ``(z_dim,)``, truncated to ``[-2, 2]`` and scaled
    by ``truncation``, then a one-hot class vector ``(num_classes,)``, each sample's class drawn
    uniformly from ``classes``.

    Layers are the package's (``generator.layers.i``, each a block's output). With the 128 px
    architecture (the default), ``generator.layers.7`` is the first at 64 x 64 (2 * channel_width
    = 256 x 64 x 64), ``generator.layers.8`` the self-attention after it, ``generator.layers.9``
    the next block (both 256 x 64 x 64); ``generator.layers.3`` is 1024 x 16 x 16.

    No ``forward_from``: the layers after any block take the class vector and the noise too, so
    an edit reruns the whole generator, with the block's output replaced by a hook.

    Args:
        classes: the ImageNet classes to sample, by index (``207``) or by name
            (``"golden retriever"``; ``panda_lightning.generators.adapters.imagenet`` lists the names known).
        truncation: in ``(0, 1]``; lower gives more typical, less varied samples.
        weights: the package's ``pytorch_model.bin`` of this architecture (such as that of
            ``biggan-deep-128``); ``None`` keeps a random initialisation (seeded by ``seed``).
        config: the architecture: the package's ``config.json`` beside the weights, or fields of
            its ``BigGANConfig`` (``{channel_width: 16}`` for a small, fast model); ``None`` is
            BigGAN-deep 128.
        seed: seed of the random initialisation, so that every run builds the same generator.
    """

    def __init__(
        self,
        classes: list[int | str] | int | str = "golden retriever",
        truncation: float = 0.4,
        weights: str | None = None,
        config: dict[str, Any] | str | None = None,
        seed: int = 0,
    ):
        super().__init__()
        try:
            from pytorch_pretrained_biggan import BigGAN as PackageBigGAN
        except ImportError as error:
            raise ImportError(f"BigGAN needs the package pytorch-pretrained-biggan; install it with `{BIGGAN_INSTALL}`.") from error
        check_float("truncation", truncation, low=0, high=1, low_inclusive=False)
        self.config = _biggan_config(config)
        classes = classes if isinstance(classes, list) else [classes]
        if not classes:
            raise ValueError("classes=[] must name at least one ImageNet class.")
        self.classes = [imagenet_index(c, self.config.num_classes) for c in classes]
        self.truncation = truncation

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = PackageBigGAN(self.config)
        # Keep the package's names ("generator.layers.7"): its weight files load as they are.
        self.embeddings, self.generator = model.embeddings, model.generator
        if weights is None:
            _settle_random_initialisation(self)
        else:
            load_weights(self, weights, "weights")

    def sample_latents(self, num_samples: int, generator: torch.Generator) -> Tensor:
        noise = torch.empty(num_samples, self.config.z_dim)
        noise = torch.nn.init.trunc_normal_(noise, a=-2.0, b=2.0, generator=generator) * self.truncation
        chosen = torch.tensor(self.classes)[torch.randint(len(self.classes), (num_samples,), generator=generator)]
        one_hot = torch.nn.functional.one_hot(chosen, self.config.num_classes).float()
        return torch.cat([noise, one_hot], dim=1)

    def forward(self, latents: Tensor) -> Tensor:
        noise, one_hot = latents.split([self.config.z_dim, self.config.num_classes], dim=1)
        condition = torch.cat([noise, self.embeddings(one_hot)], dim=1)  # as the package's BigGAN.forward
        return self.generator(condition, self.truncation)


def _biggan_config(config: dict[str, Any] | str | None) -> Any:
    from pytorch_pretrained_biggan import BigGANConfig

    if isinstance(config, str):
        return BigGANConfig.from_json_file(config)
    fields = dict(config or {})
    unknown = sorted(set(fields) - set(vars(BigGANConfig())))
    if unknown:
        raise ValueError(f"config has unknown fields {unknown}; BigGANConfig's are {sorted(vars(BigGANConfig()))}.")
    return BigGANConfig(**fields)


@torch.no_grad()
def _settle_random_initialisation(biggan: BigGAN, iterations: int = 30) -> None:
    """Make a randomly initialised BigGAN behave as a trained one does in ``eval()``.

    Spectral normalisation divides each weight ``W`` by ``u^T W v``, with ``u``, ``v`` kept up to
    date by one power iteration per training step; fresh, they are random, and the estimate is
    arbitrary (even negative). Run the power iterations that training would have run. Biases
    start at 0, as in BigGAN's own initialisation: PyTorch's default ones, not normalised, would
    outweigh the normalised weights and leave every feature map nearly constant over space. The
    last batch norm's scale and shift, which the package leaves uninitialised, are 1 and 0.
    """
    for module in biggan.modules():
        if hasattr(module, "weight_orig") and hasattr(module, "weight_u"):
            weight = module.weight_orig.flatten(1)
            v = torch.full((weight.shape[1],), weight.shape[1] ** -0.5)
            for _ in range(iterations):
                u = torch.nn.functional.normalize(weight @ v, dim=0)
                v = torch.nn.functional.normalize(weight.T @ u, dim=0)
            module.weight_u.copy_(u)
            module.weight_v.copy_(v)
            if getattr(module, "bias", None) is not None:
                module.bias.zero_()
    biggan.generator.bn.weight.fill_(1.0)
    biggan.generator.bn.bias.zero_()
