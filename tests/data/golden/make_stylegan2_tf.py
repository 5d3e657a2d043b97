"""Writes tests/data/stylegan2_tf_network.pkl, a TensorFlow-era StyleGAN2 pickle (config-f's
layout at 32 px, random variables), and tests/data/stylegan2_tf_golden.pt, the outputs of the
network that NVIDIA's converter makes of it.

The pickle is assembled from numpy arrays with the names, shapes and layouts of NVIDIA's
TensorFlow StyleGAN2 (``dnnlib.tflib.network.Network`` objects, as a stand-in class of that
name pickles them: version, name, static_kwargs, components, build_module_src, build_func_name,
variables), without TensorFlow. NVIDIA's ``legacy.load_network_pkl`` of the stylegan3
repository (not part of panda-lightning: its licence is non-commercial) converts it, and its
``G_ema`` computes the outputs on its CPU reference ops. Only data is saved.

    python tests/data/golden/make_stylegan2_tf.py /path/to/stylegan3
"""

import argparse
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import torch

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("checkout", help="a checkout of NVlabs/stylegan3 (its legacy.py converts the pickle)")
parser.add_argument("--folder", default=str(Path(__file__).parents[1]))
args = parser.parse_args()
sys.path.insert(0, args.checkout)

# config-f's arguments at 32 px, 32 channels, conditional on 3 classes (as G_main records them)
STATIC = dict(latent_size=32, dlatent_size=32, label_size=3, resolution=32, num_channels=3, fmap_base=256,
              fmap_max=32, mapping_layers=2, architecture="skip", truncation_psi=0.5, style_mixing_prob=0.9)
rng = np.random.default_rng(0)


def normal(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def channels(res):
    return min(2 * STATIC["fmap_base"] // res, STATIC["fmap_max"])


w, z, c = STATIC["dlatent_size"], STATIC["latent_size"], STATIC["label_size"]
mapping = {"LabelEmbed/weight": normal(c, w), "LabelEmbed/bias": normal(w, scale=0.1)}
for i in range(STATIC["mapping_layers"]):
    mapping[f"Dense{i}/weight"] = normal(z + w if i == 0 else w, w)
    mapping[f"Dense{i}/bias"] = normal(w, scale=0.1)


def styled(scope, cin, cout, k):
    return {f"{scope}/weight": normal(k, k, cin, cout), f"{scope}/mod_weight": normal(w, cin),
            f"{scope}/mod_bias": normal(cin, scale=0.1), f"{scope}/bias": normal(cout, scale=0.2)}


synthesis = {"4x4/Const/const": normal(1, channels(4), 4, 4), "noise0": normal(1, 1, 4, 4)}
synthesis.update(styled("4x4/Conv", channels(4), channels(4), 3))
synthesis["4x4/Conv/noise_strength"] = np.float32(rng.standard_normal() * 0.5)
synthesis.update(styled("4x4/ToRGB", channels(4), 3, 1))
noise = 1
for res in (8, 16, 32):
    for conv, cin in (("Conv0_up", channels(res // 2)), ("Conv1", channels(res))):
        synthesis.update(styled(f"{res}x{res}/{conv}", cin, channels(res), 3))
        synthesis[f"{res}x{res}/{conv}/noise_strength"] = np.float32(rng.standard_normal() * 0.5)
        synthesis[f"noise{noise}"] = normal(1, 1, res, res)
        noise += 1
    synthesis.update(styled(f"{res}x{res}/ToRGB", channels(res), 3, 1))


class Network:  # stands in for dnnlib.tflib.network.Network, whose pickled state is this dict
    def __init__(self, name, static_kwargs, components, variables):
        self.state = dict(version=4, name=name, static_kwargs=static_kwargs, components=components,
                          build_module_src="raise SystemExit('the build code ran')\n", build_func_name=name,
                          variables=list(variables.items()))

    def __getstate__(self):
        return self.state


Network.__module__ = "dnnlib.tflib.network"
tflib, network = types.ModuleType("dnnlib.tflib"), types.ModuleType("dnnlib.tflib.network")
network.Network = Network
sys.modules.update({"dnnlib.tflib": tflib, "dnnlib.tflib.network": network})


def generator(name):
    parts = dict(mapping=Network("G_mapping", {}, {}, mapping), synthesis=Network("G_synthesis", {}, {}, synthesis))
    return Network(name, STATIC, parts, {"dlatent_avg": normal(w), "lod": np.float32(0)})


discriminator = Network("D", {}, {}, {})  # (not read: legacy's converter reads it, so it is skipped below)
path = Path(args.folder) / "stylegan2_tf_network.pkl"
with open(path, "wb") as file:
    pickle.dump((generator("G"), discriminator, generator("G")), file, protocol=3)
print(f"wrote {path}")

import legacy  # noqa: E402

legacy.convert_tf_discriminator = lambda tf_D: torch.nn.Module()  # a stand-in D: this data has none
del sys.modules["dnnlib.tflib.network"], sys.modules["dnnlib.tflib"]
with open(path, "rb") as file:
    G = legacy.load_network_pkl(file)["G_ema"].eval()
latents = torch.randn([4, z], generator=torch.Generator().manual_seed(1))
labels = torch.eye(c)[[0, 1, 2, 1]]
with torch.no_grad():
    outputs = dict(ws=G.mapping(latents, labels), const=G(latents, labels, noise_mode="const"),
                   truncated=G(latents[:2], labels[:2], truncation_psi=0.7, noise_mode="const"))
golden = Path(args.folder) / "stylegan2_tf_golden.pt"
torch.save(dict(z=latents, c=labels, outputs=outputs, made_with=f"NVlabs/stylegan3 legacy.py, torch {torch.__version__}"), golden)
print(f"wrote {golden}; max |image| {outputs['const'].abs().max():.3g}")
