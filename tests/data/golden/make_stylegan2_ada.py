"""Writes tests/data/stylegan2_ada_golden.pt: NVIDIA's StyleGAN2 outputs on random weights.

Runs NVIDIA's own stylegan2-ada-pytorch (not part of panda-lightning: its licence is
non-commercial) on its CPU reference ops, and saves only data: the network's init arguments and
tensors, the latents, and its outputs. With ``--pickle PATH`` it also writes the network pickle
as NVIDIA's training loop does (``G``, ``D``, ``G_ema``, ...), to check the reader on the real
format by hand; the pickle embeds NVIDIA's source, so it is not committed.

    python tests/data/golden/make_stylegan2_ada.py /path/to/stylegan2-ada-pytorch [--pickle /tmp/g.pkl]
"""

import argparse
import copy
import json
import pickle
import sys
from pathlib import Path

import torch
from off_initial import move_off_initial_values

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("checkout", help="a checkout of NVlabs/stylegan2-ada-pytorch")
parser.add_argument("--pickle", help="also write the network pickle here")
parser.add_argument("--output", default=str(Path(__file__).parents[1] / "stylegan2_ada_golden.pt"))
args = parser.parse_args()
sys.path.insert(0, args.checkout)
import dnnlib  # noqa: E402
from training.networks import Discriminator, Generator  # noqa: E402

torch.manual_seed(0)
# 32 px, blocks b4..b32, 32 channels dropping to 16 at b32; conditional on 3 classes; clamped.
init = dict(z_dim=32, c_dim=3, w_dim=32, img_resolution=32, img_channels=3,
            mapping_kwargs=dnnlib.EasyDict(num_layers=2),
            synthesis_kwargs=dnnlib.EasyDict(channel_base=512, channel_max=32, num_fp16_res=0, conv_clamp=256,
                                             architecture="skip"))
G = Generator(**copy.deepcopy(init))
move_off_initial_values(G)
G_ema = copy.deepcopy(G).eval().requires_grad_(False)
if args.pickle:
    D = Discriminator(c_dim=3, img_resolution=32, img_channels=3, channel_base=512, channel_max=32)
    with open(args.pickle, "wb") as file:
        pickle.dump(dict(G=G, D=D, G_ema=G_ema, augment_pipe=None, training_set_kwargs=dnnlib.EasyDict(
            class_name="training.dataset.ImageFolderDataset", path="images.zip", resolution=32, use_labels=True)), file)

z = torch.randn([4, 32], generator=torch.Generator().manual_seed(1))
c = torch.eye(3)[[0, 1, 2, 1]]
features = {}
for name in ("b16.conv0", "b16.conv1"):
    G_ema.synthesis.get_submodule(name).register_forward_hook(  # the first call's output, returning None
        lambda module, inputs, output, name=name: None if name in features else features.update({name: output.clone()}))
with torch.no_grad():
    outputs = dict(
        ws=G_ema.mapping(z, c),
        const=G_ema(z, c, noise_mode="const"),
        truncated=G_ema(z[:2], c[:2], truncation_psi=0.5, truncation_cutoff=4, noise_mode="const"),
        no_noise=G_ema(z[:2], c[:2], truncation_psi=0.7, noise_mode="none"),
    )
outputs.update({f"synthesis.{name}": value[:2].clone() for name, value in features.items()})
torch.save(dict(architecture=json.loads(json.dumps(init)), state=dict(G_ema.state_dict()), z=z, c=c, outputs=outputs,
                made_with=f"NVlabs/stylegan2-ada-pytorch, torch {torch.__version__}"), args.output)
print(f"wrote {args.output}")
