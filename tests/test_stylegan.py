"""StyleGAN2 and StyleGAN3: equal to NVIDIA's and rosinality's own code on the outputs they
computed (tests/data/*_golden.pt, made by tests/data/golden/), read from a pickle of NVIDIA's
structure without running what it carries, and refusing what a network pickle does not hold."""

from __future__ import annotations

import argparse
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from panda_lightning.generators import StyleGAN2, StyleGAN3
from panda_lightning.generators.layers import activations_at
from panda_lightning.generators.formats.nvidia_pickle import read_network_pickle

from conftest import Exploit, assert_equal_to_float32_rounding

DATA = Path(__file__).parent / "data"
NVIDIA = torch.load(DATA / "stylegan2_ada_golden.pt", weights_only=True)
ROSINALITY = torch.load(DATA / "rosinality_golden.pt", weights_only=True)
STYLEGAN3 = torch.load(DATA / "stylegan3_golden.pt", weights_only=True)
# StyleGAN2 as the stylegan3 repository writes it (the published stylegan2-*.pkl files)
STYLEGAN2_OF_STYLEGAN3_REPO = torch.load(DATA / "stylegan2_stylegan3_repo_golden.pt", weights_only=True)
# (class, golden outputs and tensors, latents' source, the layer whose features were recorded)
NVIDIA_GOLDEN = {
    "stylegan2": (StyleGAN2, NVIDIA, NVIDIA, "synthesis.b16.conv0"),
    "stylegan3_t": (StyleGAN3, STYLEGAN3["config_t"], STYLEGAN3, "synthesis.L3_52_27"),
    "stylegan3_r": (StyleGAN3, STYLEGAN3["config_r"], STYLEGAN3, "synthesis.L3_52_54"),
}


# -- a pickle as stylegan2-ada-pytorch writes one -------------------------------------------


def _persistence_modules(monkeypatch):
    """Stand-ins for the modules NVIDIA's pickles name, so that pickle writes those names."""
    persistence = types.ModuleType("torch_utils.persistence")
    util = types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta):  # never called: reading must not get here
        raise AssertionError("the reader called NVIDIA's reconstruction")

    class EasyDict(dict):
        pass

    _reconstruct_persistent_obj.__module__ = persistence.__name__
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    EasyDict.__module__, EasyDict.__qualname__ = util.__name__, "EasyDict"
    persistence._reconstruct_persistent_obj, util.EasyDict = _reconstruct_persistent_obj, EasyDict
    for name, module in [("torch_utils", types.ModuleType("torch_utils")), ("torch_utils.persistence", persistence),
                         ("dnnlib", types.ModuleType("dnnlib")), ("dnnlib.util", util)]:
        monkeypatch.setitem(sys.modules, name, module)
    return _reconstruct_persistent_obj, EasyDict


def _write_network_pickle(path, generator, monkeypatch, source="", extra=None, init_kwargs=None):
    """``generator`` pickled as NVIDIA's persistence does: each module a call of
    ``_reconstruct_persistent_obj(meta)``, ``meta['state']`` its ``__dict__`` with its init
    arguments, floats as numpy scalars, EasyDicts for keyword groups, ``module_src`` the source."""
    reconstruct, easy_dict = _persistence_modules(monkeypatch)

    def easy(value):
        return easy_dict({k: easy(v) for k, v in value.items()}) if isinstance(value, dict) else value

    class Pickler(pickle.Pickler):
        def reducer_override(self, obj):
            if not isinstance(obj, nn.Module):
                return NotImplemented
            state = {k: np.float64(v) if isinstance(v, float) else v for k, v in obj.__dict__.items()
                     if k not in ("architecture", "layer_aliases")}
            recorded = generator.architecture if init_kwargs is None else init_kwargs
            state["_init_args"], state["_init_kwargs"] = (), easy(recorded) if obj is generator else {}
            name = "Generator" if obj is generator else type(obj).__name__
            meta = dict(type="class", version=6, module_src=source, class_name=name, state=state)
            return reconstruct, (meta,)

    content = dict(G=generator, D=None, G_ema=generator, augment_pipe=None,
                   training_set_kwargs=easy(dict(path="images.zip", use_labels=True)), **(extra or {}))
    with open(path, "wb") as file:
        Pickler(file, protocol=4).dump(content)


def test_equal_to_the_stylegan3_repositorys_stylegan2_read_from_its_pickle(tmp_path, monkeypatch):
    golden = STYLEGAN2_OF_STYLEGAN3_REPO
    recorded = golden["architecture"]  # train.py's: synthesis arguments at the top, no conv_clamp
    assert "channel_base" in recorded and "synthesis_kwargs" not in recorded and "conv_clamp" not in recorded
    generator = StyleGAN2(architecture=StyleGAN2.recorded_architecture(recorded)).eval()
    generator.load_state_dict(golden["state"])
    _write_network_pickle(tmp_path / "stylegan2.pkl", generator, monkeypatch, init_kwargs=recorded)
    monkeypatch.undo()
    read = StyleGAN2(pickle=str(tmp_path / "stylegan2.pkl"), truncation_psi=0.7).eval()
    latents, outputs = _latents(golden), golden["outputs"]
    assert outputs["const"].abs().max() > 256  # past the blocks' clamp, which the pickle does not record
    with torch.no_grad():
        assert_equal_to_float32_rounding(read.mapping(latents[:, :32], latents[:, 32:]), outputs["ws"])
        assert_equal_to_float32_rounding(read(latents[:2]), outputs["truncated"])
        read.truncation_psi = 1.0
        assert_equal_to_float32_rounding(read(latents), outputs["const"])


def _golden_generator(kind):
    cls, golden, _, _ = NVIDIA_GOLDEN[kind]
    generator = cls(architecture=golden["architecture"]).eval()
    generator.load_state_dict(golden["state"])
    return generator


@pytest.fixture(scope="module")
def nvidia_generator():
    return _golden_generator("stylegan2")


def _latents(golden, count=None):
    return torch.cat([golden["z"], golden["c"]], dim=1)[:count]


@pytest.mark.parametrize("kind", list(NVIDIA_GOLDEN))
def test_equal_to_nvidias_code_read_from_a_network_pickle(kind, tmp_path, monkeypatch):
    cls, golden, latents_from, layer = NVIDIA_GOLDEN[kind]
    ran = tmp_path / "the embedded source ran"
    _write_network_pickle(tmp_path / "network.pkl", _golden_generator(kind), monkeypatch,
                          source=f"open({str(ran)!r}, 'w').close()\n")
    monkeypatch.undo()  # the reader runs without NVIDIA's modules, as on a user's machine
    generator = cls(pickle=str(tmp_path / "network.pkl")).eval()
    assert not ran.exists()
    outputs, latents = golden["outputs"], _latents(latents_from)
    with torch.no_grad():
        assert_equal_to_float32_rounding(generator.mapping_ws(latents), outputs["ws"])
        assert_equal_to_float32_rounding(generator(latents), outputs["const" if cls is StyleGAN2 else "images"])
        reference = outputs[layer]  # recorded in the pass of all the latents: the batch is the convolutions' groups
        features = activations_at(generator, layer, lambda: generator(latents))
        assert_equal_to_float32_rounding(features[: len(reference), : reference.shape[1]], reference)
        generator.truncation_psi, generator.truncation_cutoff = 0.5, 4  # both made with these settings
        assert_equal_to_float32_rounding(generator(latents[:2]), outputs["truncated"])


def test_the_papers_layer_index_names_stylegan2s_convolutions(nvidia_generator):
    assert nvidia_generator.layer_aliases["layer1"] == "synthesis.b4.conv1"
    latents = _latents(NVIDIA)
    with torch.no_grad():
        features = activations_at(nvidia_generator, "layer5", lambda: nvidia_generator(latents))[:2]
    assert_equal_to_float32_rounding(features, NVIDIA["outputs"]["synthesis.b16.conv1"])


@pytest.mark.parametrize(
    "settings, expected",
    [(dict(truncation_psi=0.5, truncation_cutoff=4), "truncated"), (dict(truncation_psi=0.7, noise_mode="none"), "no_noise")],
)
def test_stylegan2s_truncation_and_noise_modes_equal_nvidias_from_a_checkpoint(settings, expected, tmp_path):
    torch.save(NVIDIA["state"], tmp_path / "state.pt")
    generator = StyleGAN2(architecture=NVIDIA["architecture"], checkpoint=str(tmp_path / "state.pt"), **settings).eval()
    with torch.no_grad():
        assert_equal_to_float32_rounding(generator(_latents(NVIDIA, 2)), NVIDIA["outputs"][expected])


def test_a_label_is_sampled_as_nvidias_one_hot_c(nvidia_generator):
    generator = StyleGAN2(architecture=NVIDIA["architecture"], label=2)
    latents = generator.sample_latents(5, torch.Generator().manual_seed(0))
    assert latents.shape == (5, 32 + 3) and (latents[:, 32:] == torch.tensor([0.0, 0.0, 1.0])).all()
    drawn = StyleGAN2(architecture=NVIDIA["architecture"]).sample_latents(200, torch.Generator().manual_seed(0))
    assert set(drawn[:, 32:].argmax(dim=1).tolist()) == {0, 1, 2} and (drawn[:, 32:].sum(dim=1) == 1).all()


def test_rosinality_checkpoint_equals_rosinalitys_code(tmp_path):
    checkpoint = dict(ROSINALITY["checkpoint"], args=argparse.Namespace(size=32, n_mlp=2))  # as train.py saves it
    torch.save(checkpoint, tmp_path / "550000.pt")
    generator = StyleGAN2(rosinality=str(tmp_path / "550000.pt")).eval()
    assert generator.architecture["synthesis_kwargs"] == dict(channel_base=512, channel_max=32)
    with torch.no_grad():
        assert_equal_to_float32_rounding(generator(ROSINALITY["z"]), ROSINALITY["outputs"]["const"])
        generator.truncation_psi = 0.5  # towards the checkpoint's latent_avg
        assert_equal_to_float32_rounding(generator(ROSINALITY["z"][:2]), ROSINALITY["outputs"]["truncated"])


def test_rosinality_without_latent_avg_truncates_towards_the_mean_w(tmp_path):
    torch.save(dict(g_ema=ROSINALITY["checkpoint"]["g_ema"]), tmp_path / "g.pt")
    generator = StyleGAN2(rosinality=str(tmp_path / "g.pt"))
    z = torch.randn(20_000, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        mean_w = generator.mapping(z, None)[:, 0].mean(dim=0)
    spread = (generator.mapping(z[:100], None)[:, 0] - mean_w).norm(dim=1).mean()
    assert (generator.mapping.w_avg - mean_w).norm() < 0.05 * spread


# -- what the reader refuses -----------------------------------------------------------------


def test_a_pickle_asking_for_a_foreign_global_is_refused_unrun(nvidia_generator, tmp_path, monkeypatch):
    marker = tmp_path / "exploited"
    _write_network_pickle(tmp_path / "network.pkl", nvidia_generator, monkeypatch, extra=dict(payload=Exploit(marker)))
    with pytest.raises(ValueError, match=r"asks for the global (posix|os)\.system, .* refused, and nothing of the pickle was run"):
        StyleGAN2(pickle=str(tmp_path / "network.pkl"))
    assert not marker.exists()


def test_the_reader_keeps_numpy_values_and_refuses_object_arrays(tmp_path):
    with open(tmp_path / "arrays.pkl", "wb") as file:
        pickle.dump(dict(size=np.array([36, 36]), gain=np.float64(2**0.5)), file)
    content = read_network_pickle(tmp_path / "arrays.pkl")
    assert content["size"].tolist() == [36, 36] and content["gain"] == 2**0.5
    with open(tmp_path / "objects.pkl", "wb") as file:
        pickle.dump(dict(objects=np.array([print], dtype=object)), file)
    with pytest.raises(ValueError, match="numpy array of Python objects"):
        read_network_pickle(tmp_path / "objects.pkl")


def test_the_pickles_other_networks_and_unsupported_settings_are_named(nvidia_generator, tmp_path, monkeypatch):
    _write_network_pickle(tmp_path / "network.pkl", nvidia_generator, monkeypatch)
    with pytest.raises(ValueError, match=r"network='D_ema' is not a network of .* it holds G, G_ema"):
        StyleGAN2(pickle=str(tmp_path / "network.pkl"), network="D_ema")
    architecture = dict(NVIDIA["architecture"], synthesis_kwargs=dict(architecture="resnet"))
    with pytest.raises(ValueError, match="architecture='resnet' is not computed here; 'skip'"):
        StyleGAN2(architecture=architecture)
    with pytest.raises(ValueError, match=r"mapping_kwargs has unknown depth; valid: .*num_layers"):
        StyleGAN2(architecture=dict(NVIDIA["architecture"], mapping_kwargs=dict(depth=2)))
    with pytest.raises(ValueError, match=r"StyleGAN2 reads one network file; got pickle='a.pkl' and rosinality='b.pt'"):
        StyleGAN2(pickle="a.pkl", rosinality="b.pt")
    with pytest.raises(ValueError, match=r"checkpoint='c.pt' holds weights for architecture=; pickle= brings its own"):
        StyleGAN2(pickle="a.pkl", checkpoint="c.pt")
    with pytest.raises(ValueError, match=r"StyleGAN3 needs one of pickle \(a network file\) or architecture"):
        StyleGAN3()
    with pytest.raises(ValueError, match=r"label=3 must be an integer .*3 classes of the generator"):
        StyleGAN2(architecture=NVIDIA["architecture"], label=3)
    with pytest.raises(ValueError, match=r"G_ema is a Generator whose synthesis network holds b4, .* not StyleGAN3's; read it with StyleGAN2"):
        StyleGAN3(pickle=str(tmp_path / "network.pkl"))
    with pytest.raises(ValueError, match=r"architecture has unknown synthesis_kwargs; valid: .*channel_base.*use_radial_filters"):
        StyleGAN3(architecture=NVIDIA["architecture"])
    with pytest.raises(ValueError, match="is not a sub-module of StyleGAN2.* Did you mean 'layer5'"):
        activations_at(nvidia_generator, "layer55", lambda: None)


# -- TensorFlow-era pickles --------------------------------------------------------------------

TF_PICKLE = DATA / "stylegan2_tf_network.pkl"  # assembled from numpy arrays, as NVIDIA's TF code pickles
TF_GOLDEN = torch.load(DATA / "stylegan2_tf_golden.pt", weights_only=True)  # what NVIDIA's converter makes of it


def _write_tf_pickle(path, monkeypatch, static=None, extra_variables=None):
    """The committed TensorFlow pickle, re-pickled through a stand-in ``dnnlib.tflib.network.Network``
    with ``static`` changes to its generators' build arguments and ``extra_variables``."""
    module = types.ModuleType("dnnlib.tflib.network")

    class Network:
        def __init__(self, record):
            self.state = dict(version=record.version, name=record.name, static_kwargs=record.static_kwargs,
                              components={name: Network(c) for name, c in record.components.items()},
                              build_module_src=record.module_source, variables=list(record.variables.items()))

        def __getstate__(self):
            return self.state

    Network.__module__, Network.__qualname__, module.Network = module.__name__, "Network", Network
    for name, value in [("dnnlib", types.ModuleType("dnnlib")), ("dnnlib.tflib", types.ModuleType("dnnlib.tflib")),
                        ("dnnlib.tflib.network", module)]:
        monkeypatch.setitem(sys.modules, name, value)
    networks = read_network_pickle(TF_PICKLE)
    written = []
    for key in ("G", "D", "G_ema"):
        network = Network(networks[key])
        if key != "D":
            network.state["static_kwargs"] = {**network.state["static_kwargs"], **(static or {})}
            network.state["variables"] += list((extra_variables or {}).items())
        written.append(network)
    with open(path, "wb") as file:
        pickle.dump(tuple(written), file, protocol=3)
    monkeypatch.undo()


def test_equal_to_nvidias_conversion_of_a_tensorflow_pickle():
    generator = StyleGAN2(pickle=str(TF_PICKLE)).eval()  # its build code, if run, would raise SystemExit
    assert generator.architecture["synthesis_kwargs"] == dict(channel_base=512, channel_max=32, conv_clamp=None, architecture="skip")
    latents, outputs = _latents(TF_GOLDEN), TF_GOLDEN["outputs"]
    with torch.no_grad():
        assert_equal_to_float32_rounding(generator.mapping_ws(latents), outputs["ws"])
        assert_equal_to_float32_rounding(generator(latents), outputs["const"])
        generator.truncation_psi = 0.7
        assert_equal_to_float32_rounding(generator(latents[:2]), outputs["truncated"])


def test_a_tensorflow_pickle_asking_for_a_foreign_global_is_refused_unrun(tmp_path, monkeypatch):
    marker = tmp_path / "exploited"
    _write_tf_pickle(tmp_path / "tf.pkl", monkeypatch, static=dict(resolution=Exploit(marker)))
    with pytest.raises(ValueError, match=r"asks for the global (posix|os)\.system, .* refused, and nothing of the pickle was run"):
        StyleGAN2(pickle=str(tmp_path / "tf.pkl"))
    assert not marker.exists()


@pytest.mark.parametrize("static, message", [
    (dict(fmap_decay=0.5), r"fmap_decay=0\.5 halves the channels at another rate than StyleGAN2's blocks; only 1\.0 is read"),
    (dict(progressive=True), r"its generator has build arguments not read here: progressive"),
    (dict(architecture="resnet"), r"architecture='resnet' is not computed here"),
])
def test_a_tensorflow_pickle_of_another_kind_is_named(static, message, tmp_path, monkeypatch):
    _write_tf_pickle(tmp_path / "tf.pkl", monkeypatch, static=static)
    with pytest.raises(ValueError, match=message):
        StyleGAN2(pickle=str(tmp_path / "tf.pkl"))


def test_stylegan3_says_that_a_tensorflow_pickle_is_not_its_own():
    with pytest.raises(ValueError, match=r"is a TensorFlow-era pickle, whose networks are StyleGAN2's or older; StyleGAN3 reads"):
        StyleGAN3(pickle=str(TF_PICKLE))


# -- the one flag on the shipped configs ------------------------------------------------------


def test_one_flag_on_the_shipped_configs_replaces_their_example_network(nvidia_generator, tmp_path, monkeypatch, capsys):
    from panda_lightning.cli import run

    monkeypatch.setattr(sys, "argv", ["panda"])
    configs = Path(__file__).parents[1] / "configs"
    _write_network_pickle(tmp_path / "network.pkl", nvidia_generator, monkeypatch)
    repository = STYLEGAN2_OF_STYLEGAN3_REPO  # the published stylegan2-*.pkl files' format
    generator = StyleGAN2(architecture=StyleGAN2.recorded_architecture(repository["architecture"]))
    generator.load_state_dict(repository["state"])
    _write_network_pickle(tmp_path / "stylegan2.pkl", generator, monkeypatch, init_kwargs=repository["architecture"])
    torch.save(dict(g_ema=ROSINALITY["checkpoint"]["g_ema"]), tmp_path / "550000.pt")
    (tmp_path / "notes.txt").write_text("not a network")
    monkeypatch.undo()
    monkeypatch.setattr(sys, "argv", ["panda"])
    # The example's layer5 is 64 x 16 x 16; each file's own is 32 x 16 x 16 (its channels at 16 px).
    for option, path in [("pickle", tmp_path / "network.pkl"), ("pickle", tmp_path / "stylegan2.pkl"), ("rosinality", tmp_path / "550000.pt"),
                         ("pickle", tmp_path / "550000.pt"), ("pickle", TF_PICKLE)]:
        run(["layers", "--config", str(configs / "stylegan2.yaml"), f"--data.generator.init_args.{option}", str(path)])
        assert capsys.readouterr().out.rstrip().endswith("data.layer='layer5' outputs (1, 32, 16, 16): PandA can factorise it.")
    with pytest.raises(ValueError, match=r"notes\.txt' cannot be read as a network pickle \(of NVIDIA's stylegan2-ada-pytorch or stylegan3; StyleGAN2 also takes rosinality's \.pt checkpoints\)"):
        run(["layers", "--config", str(configs / "stylegan2.yaml"), "--data.generator.init_args.pickle", str(tmp_path / "notes.txt")])
    _write_network_pickle(tmp_path / "stylegan3.pkl", _golden_generator("stylegan3_t"), monkeypatch)
    monkeypatch.undo()
    monkeypatch.setattr(sys, "argv", ["panda"])
    run(["layers", "--config", str(configs / "stylegan3.yaml"), "--data.generator.init_args.pickle", str(tmp_path / "stylegan3.pkl")])
    assert "also layer5" in capsys.readouterr().out
