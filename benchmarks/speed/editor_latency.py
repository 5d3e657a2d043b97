"""Latency of ``panda app`` on the server: a new sample, one edit (a move of the strength slider:
the edited image and its difference, as the PNGs the page gets) and the appearance gallery; with,
for scale, the generator's own forward pass of one sample. On the README's face generator (64 px)
and on the 1024 px StyleGAN2 shape of ``benchmarks.speed.full_size`` (random weights).

    python -m benchmarks.speed.editor_latency [--ckpt_path RUN/checkpoints/last.ckpt] [--repeats 20] [--large_repeats 3]
                             [--resolution 1024] [--channel_max 512] [--accelerator cpu|gpu]

Without ``--ckpt_path`` the factors are random (orthonormal appearances, random parts), which
costs the same. The 64 px edit is also timed through HTTP, as the page asks for it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import urllib.request
from pathlib import Path
from collections.abc import Callable

import torch

from panda_lightning.generators.adapters.stylegan import CONFIG_F
from panda_lightning import PandA
from panda_lightning.app import EditRequest, Editor, make_server
from panda_lightning.app.api import PREVIEW_SIZE, EditorAPI
from panda_lightning.app.guard import TOKEN_HEADER
from panda_lightning.datamodules import GeneratorActivations
from panda_lightning.generators import PhotoFaceDCGAN, StyleGAN2
from panda_lightning.photos import Box, load_photo


PHOTO = Path(__file__).resolve().parents[2] / "tests" / "data" / "astronaut.png"


def milliseconds(run: Callable[[int], object], repeats: int, synchronise: Callable[[], None]) -> float:
    """The median time of ``run(i)`` for ``i`` in ``range(repeats)``, after one run to warm up."""
    run(repeats)
    times = []
    for i in range(repeats):
        synchronise()
        start = time.perf_counter()
        run(i)
        synchronise()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def random_factors(datamodule: GeneratorActivations, parts: int, seed: int = 0) -> PandA:
    """PandA with random orthonormal appearances and random parts, scaled to the layer's activations."""
    model = PandA(datamodule.feature_shape, layer=datamodule.layer, parts_rank=parts, seed=seed)
    channels = datamodule.feature_shape[0]
    appearances, _ = torch.linalg.qr(torch.randn(channels, channels, generator=torch.Generator().manual_seed(seed)))
    model.appearances.data.copy_(appearances)
    Z = next(datamodule.held_out_batches(16))
    model.activation_scale.fill_(Z.pow(2).sum(1).mean().sqrt().item())
    return model.to(datamodule.generator.device).eval()


def measure(name: str, datamodule: GeneratorActivations, model: PandA, repeats: int, over_http: bool) -> None:
    device = datamodule.generator.device
    synchronise = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    start = time.perf_counter()
    editor = Editor(model, datamodule.generator, "--config CONFIG --ckpt_path CKPT")
    started = time.perf_counter() - start
    api = EditorAPI(editor)
    latents = datamodule.generator.preview_latents(1, 0)
    forward = milliseconds(lambda i: datamodule.generator.generate(latents), repeats, synchronise)
    sample = milliseconds(lambda i: api.sample({"seed": 1000 + i}), repeats, synchronise)  # each seed new
    api.sample({"seed": 0})
    edit = milliseconds(lambda i: api.edit({"seed": 0, "part": 0, "appearance": 1, "alpha": 0.1 * i}), repeats, synchronise)
    images = milliseconds(lambda i: editor.edit(EditRequest(seed=0, part=0, appearance=1, alpha=0.1 * i), largest=PREVIEW_SIZE),
                          repeats, synchronise)
    gallery = milliseconds(lambda i: api.gallery({"seed": 0, "part": i % editor.num_parts}), max(1, repeats // 4), synchronise)
    size = "x".join(map(str, editor.sample(0).image.shape[1:]))
    print(f"{name}, {size} px, layer {datamodule.layer} {tuple(datamodule.feature_shape)}; the editor starts in {started:.2f} s")
    print(f"  generator forward, one sample   {forward:9.1f} ms")
    print(f"  new sample (image and parts)    {sample:9.1f} ms")
    print(f"  edit (slider move)              {edit:9.1f} ms   {edit / forward:5.2f} x the forward pass")
    print(f"    of which the edited images    {images:9.1f} ms   {images / forward:5.2f} x (the rest: encoding them for the page)")
    print(f"  gallery of {editor.gallery_size} appearances        {gallery:9.1f} ms")
    if over_http:
        # A photo (the portrait of tests/data, 512 px) opened, inverted and shown, then edited.
        photo = load_photo(PHOTO)
        start = time.perf_counter()
        name = editor.add_photo(photo, "me.jpg", Box(135, 5, 190))
        api.sample({"seed": 0, "photo": name})
        opened = time.perf_counter() - start
        photo_edit = milliseconds(lambda i: api.edit({"seed": 0, "photo": name, "part": 0, "appearance": 1, "alpha": 0.1 * i}),
                                  repeats, synchronise)
        print(f"  a photo {photo.shape[2]}x{photo.shape[1]} px opened, inverted and shown  {opened:6.1f} s")
        print(f"  edit of the photo (slider move) {photo_edit:9.1f} ms   (the photo at its own size, carried back and encoded)")
        server = make_server(editor, port=0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/api/edit"

        def round_trip(i: int) -> None:
            body = json.dumps({"seed": 0, "part": 0, "appearance": 1, "alpha": 0.1 * i}).encode()
            headers = {"Content-Type": "application/json", TOKEN_HEADER: server.guard.token}
            with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST", headers=headers)) as response:
                response.read()

        print(f"  edit through HTTP (round trip)  {milliseconds(round_trip, repeats, synchronise):9.1f} ms")
        server.shutdown()
        server.server_close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed.editor_latency", description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt_path", help="a fit of configs/photo_faces.yaml; random factors without it")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--large_repeats", type=int, default=3)
    parser.add_argument("--resolution", type=int, default=1024, help="of the StyleGAN2 shape (a smaller one to try it quickly)")
    parser.add_argument("--channel_max", type=int, default=512)
    parser.add_argument("--accelerator", choices=["cpu", "gpu"], default="cpu")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if args.accelerator == "gpu" else "cpu")
    what = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {what}")

    faces = GeneratorActivations(PhotoFaceDCGAN().to(device), layer="main.8", batch_size=64)
    model = PandA.load_from_checkpoint(args.ckpt_path, map_location=device).eval() if args.ckpt_path else random_factors(faces, 8)
    measure("PhotoFaceDCGAN", faces, model, args.repeats, over_http=True)

    synthesis = {**CONFIG_F["synthesis_kwargs"], "channel_max": args.channel_max}
    generator = StyleGAN2(architecture={**CONFIG_F, "img_resolution": args.resolution, "synthesis_kwargs": synthesis}, truncation_psi=0.7)
    large = GeneratorActivations(generator.to(device), layer="layer5", batch_size=16)
    measure("StyleGAN2 config-f (random weights)", large, random_factors(large, 8), args.large_repeats, over_http=False)


if __name__ == "__main__":
    main()
