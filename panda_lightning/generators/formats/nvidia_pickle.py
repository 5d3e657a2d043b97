"""Reading NVIDIA's network pickles (stylegan2-ada-pytorch, stylegan3, and the TensorFlow-era
ones of stylegan2 and stylegan2-ada) without running them.

Those pickles store each network as a *persistent object*: a call of
``torch_utils.persistence._reconstruct_persistent_obj(meta)`` whose ``meta`` carries the Python
source of the network's module, which NVIDIA's loader executes. :func:`read_network_pickle`
unpickles with a reader that maps that call to a :class:`PersistentRecord` of the recorded
class name, init arguments and state, and never executes the source; tensors come through
torch's own rebuild functions (their storages are read with ``weights_only=True``); any other
global in the pickle is refused with an error that names it. TensorFlow-era pickles hold
``dnnlib.tflib.network.Network`` objects, read as :class:`TFNetworkRecord`: their recorded
arguments and numpy variables, and never their build code.
"""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor


@dataclass
class PersistentRecord:
    """One persistent object of the pickle, as recorded: nothing of it has been run.

    Attributes:
        class_name: the class the object was (``"Generator"``, ``"SynthesisBlock"``, ...).
        init_kwargs: the keyword arguments it was built with.
        parameters, buffers: its own tensors, by attribute name.
        children: its sub-modules, records themselves (``None`` where an attribute is ``None``).
        module_source: the embedded Python source, kept only as text (to tell networks apart).
    """

    class_name: str
    init_kwargs: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Tensor] = field(default_factory=dict)
    buffers: dict[str, Tensor] = field(default_factory=dict)
    children: dict[str, Any] = field(default_factory=dict)
    module_source: str = ""

    def state_dict(self, prefix: str = "") -> dict[str, Tensor]:
        """Every tensor below this record, named as ``nn.Module.state_dict`` names them."""
        state = {prefix + name: tensor.detach() for name, tensor in self.parameters.items() if tensor is not None}
        state.update({prefix + name: tensor for name, tensor in self.buffers.items() if tensor is not None})
        for name, child in self.children.items():
            if isinstance(child, PersistentRecord):
                state.update(child.state_dict(f"{prefix}{name}."))
        return state


class TFNetworkRecord:
    """One network of a TensorFlow-era pickle (``dnnlib.tflib.network.Network``), as recorded:
    nothing of it has been run, and TensorFlow is not needed.

    Attributes:
        version: the format's version.
        name: the network's name (``"G_synthesis"``, ...).
        static_kwargs: the keyword arguments its build function took.
        components: its sub-networks, records themselves (``mapping``, ``synthesis``).
        variables: its own variables, numpy arrays by TensorFlow name (``Dense0/weight``).
        module_source: the build code that TensorFlow's loader would run, kept only as text.
    """

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict) or not isinstance(state.get("variables"), (list, tuple)):
            raise pickle.UnpicklingError("a TensorFlow network of the pickle has no list of variables.")
        self.version = int(state.get("version", 0))
        self.name = str(state.get("name", ""))
        self.static_kwargs = _plain(dict(state.get("static_kwargs") or {}))
        self.components = dict(state.get("components") or {})
        self.variables = {str(name): np.asarray(value) for name, value in state["variables"]}
        self.module_source = str(state.get("build_module_src", ""))

    def all_variables(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Every variable of the network and its components, by path (``mapping/Dense0/weight``)."""
        found = {prefix + name: value for name, value in self.variables.items()}
        for name, component in self.components.items():
            if isinstance(component, TFNetworkRecord):
                found.update(component.all_variables(f"{prefix}{name}/"))
        return found


class _EasyDict(dict):
    """Stands in for ``dnnlib.util.EasyDict`` (a ``dict`` with attribute access) while reading."""


def _plain(value: Any) -> Any:
    """``value`` with every dict subclass made a plain dict (init kwargs hold EasyDicts)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    return value


def _record(meta: dict[str, Any]) -> PersistentRecord:
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("state"), dict):
        raise pickle.UnpicklingError(
            "a persistent object of the pickle has no class state (type 'class' with a state dict); "
            "this is not a network pickle of stylegan2-ada-pytorch or stylegan3."
        )
    state = meta["state"]
    return PersistentRecord(
        class_name=str(meta.get("class_name")),
        init_kwargs=_plain(dict(state.get("_init_kwargs") or {})),
        parameters=dict(state.get("_parameters") or {}),
        buffers={
            name: tensor
            for name, tensor in (state.get("_buffers") or {}).items()
            if name not in (state.get("_non_persistent_buffers_set") or ())
        },
        children=dict(state.get("_modules") or {}),
        module_source=str(meta.get("module_src", "")),
    )


def _storage_from_bytes(data: bytes) -> Any:
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _numpy_dtype(name: Any, align: bool = False, copy: bool = False) -> np.dtype:
    dtype = np.dtype(name, align=align, copy=copy)
    if dtype.hasobject:
        raise pickle.UnpicklingError(f"the pickle holds a numpy array of Python objects ({dtype}); refused.")
    return dtype


def _numpy_scalar(dtype: np.dtype, data: bytes) -> Any:
    return np.frombuffer(data, dtype=_numpy_dtype(dtype))[0]


def _numpy_array(subtype: type, shape: tuple[int, ...], dtype_code: bytes) -> np.ndarray:
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"the pickle holds a numpy array of type {subtype!r}; only np.ndarray is read.")
    return np.ndarray(shape, dtype=np.uint8)  # the BUILD that follows sets dtype, shape and data


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    # Protocols 0 and 1 rebuild objects through copyreg; only our record class is rebuilt.
    if cls is not TFNetworkRecord or base is not object or state is not None:
        raise pickle.UnpicklingError(f"the pickle rebuilds a {cls!r} through copyreg; only TensorFlow networks are read.")
    return TFNetworkRecord.__new__(TFNetworkRecord)


_ALLOWED: dict[tuple[str, str], Callable[..., Any] | type] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _record,
    ("dnnlib.tflib.network", "Network"): TFNetworkRecord,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("builtins", "object"): object,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
    ("torch", "Size"): torch.Size,
    ("numpy", "dtype"): _numpy_dtype,
    ("numpy", "ndarray"): np.ndarray,
    **{(module, "scalar"): _numpy_scalar for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(module, "_reconstruct"): _numpy_array for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
}


class _RecordingUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"the pickle asks for the global {module}.{name}, which a network pickle of NVIDIA's (stylegan2, "
                "stylegan2-ada, stylegan3) does not hold; it is refused, and nothing of the pickle was run. Reading "
                "allows only tensors, NVIDIA's persistent objects and TensorFlow networks (their recorded state), "
                "EasyDict, OrderedDict and numpy arrays and scalars."
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError(f"the pickle holds a persistent id {pid!r}; a network pickle has none.")


def read_network_pickle(path: str | Path, argument: str = "pickle") -> dict[str, Any]:
    """The top-level dict of a network pickle (``G``, ``D``, ``G_ema``, ``training_set_kwargs``,
    ``augment_pipe``), each network a :class:`PersistentRecord`, or, of a TensorFlow-era pickle,
    ``{G, D, G_ema}`` as :class:`TFNetworkRecord`\\ s; nothing in the file is run.

    Raises ``FileNotFoundError`` if ``path`` is not a file and ``ValueError``, naming
    ``argument=path``, if it is not such a pickle or asks for anything else.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"{argument}={str(path)!r} is not a file.")
    try:
        with open(path, "rb") as file:
            content = _RecordingUnpickler(file).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise ValueError(
            f"{argument}={str(path)!r} cannot be read as a network pickle (of NVIDIA's stylegan2-ada-pytorch or "
            f"stylegan3; StyleGAN2 also takes rosinality's .pt checkpoints): {error}"
        ) from error
    if isinstance(content, tuple) and len(content) == 3 and all(isinstance(net, TFNetworkRecord) for net in content):
        # TensorFlow-era: (G, D, Gs), Gs the average of G's weights that NVIDIA samples with.
        return dict(zip(("G", "D", "G_ema"), content))
    if not isinstance(content, dict):
        raise ValueError(
            f"{argument}={str(path)!r} holds a {type(content).__name__}; a network pickle holds a dict with "
            "'G', 'D' and 'G_ema' (or, from TensorFlow, the networks (G, D, Gs))."
        )
    return _plain(content)
