"""How far StyleGAN2, StyleGAN3 and ProGAN are from the reference code that made tests/data/*_golden.pt.

    python -m benchmarks.equality.stylegan_equality

Prints, for every output the reference code computed (images per setting, features per layer),
the largest absolute difference from this package's generator and the output's largest magnitude.
The golden files come from tests/data/golden/ (NVIDIA's stylegan2-ada-pytorch and stylegan3, the
latter's StyleGAN2 too, its legacy.py's conversion of a TensorFlow StyleGAN2 pickle, and
rosinality/stylegan2-pytorch and pytorch_GAN_zoo's PGAN, run on random weights outside this package).
"""

from __future__ import annotations

import platform
import tempfile
from pathlib import Path

import torch

from panda_lightning.generators import ProGAN, StyleGAN2, StyleGAN3
from panda_lightning.generators.layers import activations_at

DATA = Path(__file__).parents[2] / "tests" / "data"
NVIDIA_SETTINGS = {"const": {}, "truncated": dict(truncation_psi=0.5, truncation_cutoff=4),
                   "no_noise": dict(truncation_psi=0.7, noise_mode="none")}


def _row(reference: str, output: str, ours: torch.Tensor, theirs: torch.Tensor) -> str:
    difference = (ours - theirs).abs().max().item()
    return f"{reference:<28} {output:<22} {tuple(theirs.shape)!s:<18} {difference:>10.3g} {theirs.abs().max().item():>10.3g}"


@torch.no_grad()
def main() -> None:
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}")
    print(f"{'reference':<28} {'output':<22} {'shape':<18} {'max |diff|':>10} {'max |ref|':>10}")
    nvidia = torch.load(DATA / "stylegan2_ada_golden.pt", weights_only=True)
    rosinality = torch.load(DATA / "rosinality_golden.pt", weights_only=True)
    latents = torch.cat([nvidia["z"], nvidia["c"]], dim=1)
    with tempfile.TemporaryDirectory() as folder:
        torch.save(nvidia["state"], Path(folder) / "state.pt")
        generators = {name: StyleGAN2(architecture=nvidia["architecture"], checkpoint=str(Path(folder) / "state.pt"),
                                      **settings).eval() for name, settings in NVIDIA_SETTINGS.items()}
        for name, generator in generators.items():
            reference = nvidia["outputs"][name]
            print(_row("stylegan2-ada-pytorch", f"images, {name}", generator(latents[: len(reference)]), reference))
        generator = generators["const"]  # the features were recorded in the "const" pass
        for layer in ("synthesis.b16.conv0", "synthesis.b16.conv1"):
            reference = nvidia["outputs"][layer]
            # recorded in the pass of all the latents: the batch is the convolution's groups
            ours = activations_at(generator, layer, lambda: generator(latents))[: len(reference)]
            print(_row("stylegan2-ada-pytorch", layer.removeprefix("synthesis."), ours, reference))
        repository = torch.load(DATA / "stylegan2_stylegan3_repo_golden.pt", weights_only=True)
        latents = torch.cat([repository["z"], repository["c"]], dim=1)
        torch.save(repository["state"], Path(folder) / "state2.pt")
        for name, psi in (("const", 1.0), ("truncated", 0.7)):
            # the architecture as such a pickle records it, read as the reader does
            generator = StyleGAN2(architecture=StyleGAN2.recorded_architecture(repository["architecture"]),
                                  checkpoint=str(Path(folder) / "state2.pt"), truncation_psi=psi).eval()
            reference = repository["outputs"][name]
            print(_row("stylegan3 repo, StyleGAN2", f"images, {name}", generator(latents[: len(reference)]), reference))
        tensorflow = torch.load(DATA / "stylegan2_tf_golden.pt", weights_only=True)
        latents = torch.cat([tensorflow["z"], tensorflow["c"]], dim=1)
        for name, psi in (("const", 1.0), ("truncated", 0.7)):
            generator = StyleGAN2(pickle=str(DATA / "stylegan2_tf_network.pkl"), truncation_psi=psi).eval()
            reference = tensorflow["outputs"][name]
            print(_row("stylegan2 TF, legacy.py", f"images, {name}", generator(latents[: len(reference)]), reference))
        stylegan3 = torch.load(DATA / "stylegan3_golden.pt", weights_only=True)
        latents = torch.cat([stylegan3["z"], stylegan3["c"]], dim=1)
        for config in ("config_t", "config_r"):
            golden = stylegan3[config]
            torch.save(golden["state"], Path(folder) / "state3.pt")
            generators = {name: StyleGAN3(architecture=golden["architecture"], checkpoint=str(Path(folder) / "state3.pt"),
                                          **settings).eval()
                          for name, settings in (("plain", {}), ("truncated", dict(truncation_psi=0.5, truncation_cutoff=4)))}
            for name, generator in generators.items():
                reference = golden["outputs"]["images" if name == "plain" else name]
                print(_row(f"stylegan3, {config}", f"images, {name}", generator(latents[: len(reference)]), reference))
            generator = generators["plain"]  # the features were recorded in the untruncated pass
            layer = next(key for key in golden["outputs"] if key.startswith("synthesis."))
            reference = golden["outputs"][layer]
            ours = activations_at(generator, layer, lambda: generator(latents))
            print(_row(f"stylegan3, {config}", layer.removeprefix("synthesis."), ours[:1, :8], reference))
        zoo = torch.load(DATA / "progan_zoo_golden.pt", weights_only=True)
        for name, alpha in (("images", 0.0), ("blended", 0.3)):
            generator = ProGAN(checkpoint=str(DATA / "progan_zoo.pth"), alpha=alpha).eval()
            print(_row("pytorch_GAN_zoo PGAN", f"images, alpha {alpha:g}", generator(zoo["z"]), zoo["outputs"][name]))
        torch.save(rosinality["checkpoint"], Path(folder) / "g.pt")
        generator = StyleGAN2(rosinality=str(Path(folder) / "g.pt")).eval()
        print(_row("rosinality/stylegan2-pytorch", "images, const", generator(rosinality["z"]), rosinality["outputs"]["const"]))
        generator.truncation_psi = 0.5
        reference = rosinality["outputs"]["truncated"]
        print(_row("rosinality/stylegan2-pytorch", "images, truncated", generator(rosinality["z"][: len(reference)]), reference))


if __name__ == "__main__":
    main()
