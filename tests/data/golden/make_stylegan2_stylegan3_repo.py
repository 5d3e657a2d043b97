"""Writes tests/data/stylegan2_stylegan3_repo_golden.pt: the outputs of StyleGAN2 as NVIDIA's
stylegan3 repository writes it (``training.networks_stylegan2``, the format of the published
``stylegan2-*.pkl`` files), on random weights.

Runs NVIDIA's own stylegan3 (not part of panda-lightning: its licence is non-commercial) on its
CPU reference ops, and saves only data: the init arguments as that repository's ``train.py``
records them (the synthesis arguments at the top level, ``fused_modconv_default``, no
``conv_clamp``: the blocks' default of 256 applies), the tensors, the latents and the outputs.
The RGB layers' weights are scaled up so that the images pass 256 and the clamp shows.

    python tests/data/golden/make_stylegan2_stylegan3_repo.py /path/to/stylegan3
"""

import argparse
import json
import sys
from pathlib import Path

import torch
from off_initial import move_off_initial_values

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("checkout", help="a checkout of NVlabs/stylegan3")
parser.add_argument("--output", default=str(Path(__file__).parents[1] / "stylegan2_stylegan3_repo_golden.pt"))
args = parser.parse_args()
sys.path.insert(0, args.checkout)
import dnnlib  # noqa: E402
from training.networks_stylegan2 import Generator  # noqa: E402

torch.manual_seed(0)
# 32 px, blocks b4..b32, conditional on 3 classes; the keys train.py --cfg=stylegan2 records.
init = dict(z_dim=32, w_dim=32, mapping_kwargs=dnnlib.EasyDict(num_layers=2), channel_base=512, channel_max=32,
            fused_modconv_default="inference_only", num_fp16_res=0, c_dim=3, img_resolution=32, img_channels=3)
G = Generator(**init).eval().requires_grad_(False)
move_off_initial_values(G)
with torch.no_grad():
    for name, p in G.named_parameters():
        if "torgb" in name and name.endswith("weight"):
            p.mul_(30)  # images past the clamp at 256

z = torch.randn([4, 32], generator=torch.Generator().manual_seed(1))
c = torch.eye(3)[[0, 1, 2, 1]]
with torch.no_grad():
    outputs = dict(
        ws=G.mapping(z, c),
        const=G(z, c, noise_mode="const"),
        truncated=G(z[:2], c[:2], truncation_psi=0.7, noise_mode="const"),
    )
    for block in G.synthesis.children():
        block.conv_clamp = None
        for layer in block.children():
            if hasattr(layer, "conv_clamp"):
                layer.conv_clamp = None
    unclamped = G(z, c, noise_mode="const")
print(f"max |image| {outputs['const'].abs().max():.1f}; without the clamp {unclamped.abs().max():.1f}")
torch.save(dict(architecture=json.loads(json.dumps(init)), state=dict(G.state_dict()), z=z, c=c, outputs=outputs,
                made_with=f"NVlabs/stylegan3 (training.networks_stylegan2), torch {torch.__version__}"), args.output)
print(f"wrote {args.output}")
