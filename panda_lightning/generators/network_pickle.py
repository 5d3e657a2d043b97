"""Reading NVIDIA's network pickles (stylegan2-ada-pytorch, stylegan3) without running them.

Those pickles store each network as a *persistent object*: a call of
``torch_utils.persistence._reconstruct_persistent_obj(meta)`` whose ``meta`` carries the Python
source of the network's module, which NVIDIA's loader executes. :func:`read_network_pickle`
unpickles with a reader that maps that call to a :class:`PersistentRecord` of the recorded
class name, init arguments and state, and never executes the source; tensors come through
torch's own rebuild functions (their storages are read with ``weights_only=True``); any other
global in the pickle is refused with an error that names it.
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


_ALLOWED: dict[tuple[str, str], Callable[..., Any] | type] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _record,
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
                f"the pickle asks for the global {module}.{name}, which a network pickle of stylegan2-ada-pytorch or "
                "stylegan3 does not hold; it is refused, and nothing of the pickle was run. Reading allows only "
                "tensors, NVIDIA's persistent objects (their recorded state), EasyDict, OrderedDict and numpy scalars."
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError(f"the pickle holds a persistent id {pid!r}; a network pickle has none.")


def read_network_pickle(path: str | Path, argument: str = "pickle") -> dict[str, Any]:
    """The top-level dict of a network pickle (``G``, ``D``, ``G_ema``, ``training_set_kwargs``,
    ``augment_pipe``), each network a :class:`PersistentRecord`; nothing in the file is run.

    Raises ``FileNotFoundError`` if ``path`` is not a file and ``ValueError``, naming
    ``argument=path``, if it is not such a pickle or asks for anything else.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"{argument}={str(path)!r} is not a file.")
    try:
        with open(path, "rb") as file:
            content = _RecordingUnpickler(file).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise ValueError(f"{argument}={str(path)!r} cannot be read as a network pickle: {error}") from error
    if not isinstance(content, dict):
        raise ValueError(
            f"{argument}={str(path)!r} holds a {type(content).__name__}; a network pickle holds a dict with "
            "'G', 'D' and 'G_ema'."
        )
    return _plain(content)
