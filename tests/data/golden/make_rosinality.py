"""Writes tests/data/rosinality_golden.pt: rosinality/stylegan2-pytorch's outputs on random weights.

Runs rosinality's code (MIT; not part of panda-lightning) on its CPU paths, its CUDA extensions
not built, with fewer channels than its fixed 512 so that the file stays small. Saves its
``g_ema`` state dict and ``latent_avg`` (as its checkpoints hold them), the latents and outputs.

    python tests/data/golden/make_rosinality.py /path/to/stylegan2-pytorch
"""

import argparse
import sys
import types
from pathlib import Path

import torch
import torch.utils.cpp_extension

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("checkout", help="a checkout of rosinality/stylegan2-pytorch")
parser.add_argument("--output", default=str(Path(__file__).parents[1] / "rosinality_golden.pt"))
args = parser.parse_args()
sys.path.insert(0, args.checkout)
torch.utils.cpp_extension.load = lambda *a, **k: None  # its ops fall back to plain PyTorch on the CPU
source = (Path(args.checkout) / "model.py").read_text()
anchor = "        self.input = ConstantInput(self.channels[4])"
assert anchor in source, "this checkout's model.py is not the one this script knows"
model = types.ModuleType("model")
exec(compile(source.replace(anchor, "        self.channels = {4: 32, 8: 32, 16: 32, 32: 16}\n" + anchor), "model.py", "exec"),
     model.__dict__)

torch.manual_seed(0)
g_ema = model.Generator(32, 32, 2, channel_multiplier=2).eval()
with torch.no_grad():
    for name, p in g_ema.named_parameters():
        if name.endswith("noise.weight"):
            p.copy_(torch.randn_like(p) * 0.5)
        elif name.endswith("bias"):
            p.add_(torch.randn_like(p) * 0.2)
        else:
            p.mul_(1 + 0.1 * torch.randn_like(p))
latent_avg = torch.randn(32)
z = torch.randn([4, 32], generator=torch.Generator().manual_seed(1))
with torch.no_grad():
    const, _ = g_ema([z], randomize_noise=False)
    truncated, _ = g_ema([z[:2]], truncation=0.5, truncation_latent=latent_avg[None], randomize_noise=False)
torch.save(dict(checkpoint=dict(g_ema=dict(g_ema.state_dict()), latent_avg=latent_avg), z=z,
                outputs=dict(const=const, truncated=truncated),
                made_with=f"rosinality/stylegan2-pytorch, torch {torch.__version__}"), args.output)
print(f"wrote {args.output}")
