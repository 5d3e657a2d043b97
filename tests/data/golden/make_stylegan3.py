"""Writes tests/data/stylegan3_golden.pt: NVIDIA's StyleGAN3 outputs on random weights, config-t and config-r.

Runs NVIDIA's own stylegan3 (not part of panda-lightning: its licence is non-commercial) on its
CPU reference ops, and saves only data: each network's init arguments and tensors, the latents
and its outputs. With ``--pickle-folder DIR`` it also writes the network pickles (which embed
NVIDIA's source, so they are not committed), to check the reader on the real format by hand.

    python tests/data/golden/make_stylegan3.py /path/to/stylegan3 [--pickle-folder /tmp]
"""

import argparse
import copy
import json
import math
import pickle
import sys
from pathlib import Path

import torch

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("checkout", help="a checkout of NVlabs/stylegan3")
parser.add_argument("--pickle-folder", help="also write the network pickles here")
parser.add_argument("--output", default=str(Path(__file__).parents[1] / "stylegan3_golden.pt"))
args = parser.parse_args()
sys.path.insert(0, args.checkout)
import dnnlib  # noqa: E402
from training.networks_stylegan3 import Generator  # noqa: E402

# 32 px, 6 layers (the last 2 critically sampled), conditional on 3 classes; config-r as
# NVIDIA's train.py makes it: 1x1 convolutions, radial filters, twice the channels.
CONFIGS = {
    "config_t": dict(channel_base=512, channel_max=32),
    "config_r": dict(channel_base=1024, channel_max=64, conv_kernel=1, use_radial_filters=True),
}
z = torch.randn([4, 32], generator=torch.Generator().manual_seed(1))
c = torch.eye(3)[[0, 1, 2, 1]]
golden = dict(z=z, c=c, made_with=f"NVlabs/stylegan3, torch {torch.__version__}")
for seed, (config, extra) in enumerate(CONFIGS.items()):
    torch.manual_seed(seed)
    init = dict(z_dim=32, c_dim=3, w_dim=32, img_resolution=32, img_channels=3,
                mapping_kwargs=dnnlib.EasyDict(num_layers=2), num_layers=6, num_critical=2, num_fp16_res=0,
                conv_clamp=256, magnitude_ema_beta=0.5 ** (32 / 20e3), **extra)
    G = Generator(**copy.deepcopy(init))
    with torch.no_grad():  # every tensor away from its initial value
        for name, p in G.named_parameters():
            if name == "synthesis.input.affine.weight":  # zero at first: each w now turns and shifts its image
                p.copy_(torch.randn_like(p) * 0.3)
            elif name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.2)
            else:
                p.mul_(1 + 0.1 * torch.randn_like(p))
        for name, b in G.named_buffers():
            if name.endswith("magnitude_ema"):
                b.copy_(torch.rand([]) + 0.5)
        G.mapping.w_avg.copy_(torch.randn_like(G.mapping.w_avg))
        angle = 0.3  # a user transform of the input, as NVIDIA's gen_images.py sets one
        G.synthesis.input.transform.copy_(torch.tensor([[math.cos(angle), math.sin(angle), 0.1],
                                                        [-math.sin(angle), math.cos(angle), -0.2], [0, 0, 1]]))
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    if args.pickle_folder:
        with open(Path(args.pickle_folder) / f"stylegan3_{config}.pkl", "wb") as file:
            pickle.dump(dict(G=G, D=None, G_ema=G_ema, augment_pipe=None,
                             training_set_kwargs=dnnlib.EasyDict(path="images.zip", use_labels=True)), file)
    features = {}
    layer = G_ema.synthesis.layer_names[3]
    G_ema.synthesis.get_submodule(layer).register_forward_hook(  # the first call's output, returning None
        lambda module, inputs, output: None if features else features.update(value=output.clone()))
    with torch.no_grad():
        outputs = dict(
            ws=G_ema.mapping(z, c),
            images=G_ema(z, c),
            truncated=G_ema(z[:2], c[:2], truncation_psi=0.5, truncation_cutoff=4),
        )
    outputs[f"synthesis.{layer}"] = features["value"][:1, :8].clone()  # one sample, 8 channels: a small file
    golden[config] = dict(architecture=json.loads(json.dumps(init)), state=dict(G_ema.state_dict()), outputs=outputs)
torch.save(golden, args.output)
print(f"wrote {args.output}")
