"""Writes tests/data/progan_zoo.pth, a checkpoint of facebookresearch/pytorch_GAN_zoo's PGAN (the
format that ``torch.hub.load('facebookresearch/pytorch_GAN_zoo:hub', 'PGAN', ...)`` reads), and
tests/data/progan_zoo_golden.pt, its generator's outputs, on random weights.

Runs pytorch_GAN_zoo's own code (BSD) on the CPU: a ProgressiveGAN of three scales (4, 8 and 16
px; 32, 32 and 16 channels) grown as its training does, every bias moved off zero;
saved by its own ``save`` (``config``, ``netG``, ``netD``, ``avgG``); its outputs as saved,
and with the last scale blended in at alpha = 0.3 (as its training does). Only the checkpoint
and outputs are written.

    python tests/data/golden/make_progan_zoo.py /path/to/pytorch_GAN_zoo
"""

import argparse
import sys
from pathlib import Path

import torch

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("checkout", help="a checkout of facebookresearch/pytorch_GAN_zoo")
parser.add_argument("--folder", default=str(Path(__file__).parents[1]))
args = parser.parse_args()
sys.path.insert(0, args.checkout)
from models.progressive_gan import ProgressiveGAN  # noqa: E402


class Adam(torch.optim.Adam):  # its optimisers pass betas=[0, 0.99], which torch >= 2.2 refuses (int and float)
    def __init__(self, params, betas=(0.9, 0.999), **options):
        super().__init__(params, betas=tuple(float(beta) for beta in betas), **options)


torch.optim.Adam = Adam

torch.manual_seed(0)
model = ProgressiveGAN(useGPU=False, storeAVG=True, depthScale0=32, dimLatentVector=24)
for depth in (32, 16):
    model.addScale(depth)
with torch.no_grad():
    for network in (model.getOriginalG(), model.getOriginalAvgG()):
        for name, p in network.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn_like(p) * 0.2)
model.save(str(Path(args.folder) / "progan_zoo.pth"))

z = torch.randn(4, 24, generator=torch.Generator().manual_seed(1))
outputs = {}
with torch.no_grad():
    outputs["images"] = model.test(z, getAvG=True, toCPU=True)
    # blending the 16 px scale in, as during its training (updateAlpha's own code, which on a CPU
    # fails to reach avgG through DataParallel's .module)
    for network in (model.getOriginalG(), model.getOriginalD(), model.getOriginalAvgG()):
        network.setNewAlpha(0.3)
    model.config.alpha = 0.3
    outputs["blended"] = model.test(z, getAvG=True, toCPU=True)
torch.save(dict(z=z, outputs=outputs, made_with=f"facebookresearch/pytorch_GAN_zoo, torch {torch.__version__}"),
           Path(args.folder) / "progan_zoo_golden.pt")
print(f"wrote progan_zoo.pth and progan_zoo_golden.pt in {args.folder}; "
      f"images {tuple(outputs['images'].shape)}, max |image| {outputs['images'].abs().max():.3g}")
