"""Reading a generator's activations at a named layer: hooks, so any ``nn.Module`` works.

:func:`activations_at` stops the forward pass at the layer, so nothing after it runs;
:func:`with_replaced_output` runs it whole with the layer's output edited.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn


def layer_names(generator: nn.Module) -> list[str]:
    """Dotted paths of every sub-module of ``generator`` (``"main.8"``, ...)."""
    return [name for name, _ in generator.named_modules() if name]


def resolve_layer(generator: nn.Module, layer: str) -> nn.Module:
    """The sub-module at the dotted path ``layer``, or a ``ValueError`` listing valid paths."""
    modules = dict(generator.named_modules())
    if layer in modules and layer:
        return modules[layer]
    names = layer_names(generator)
    close = difflib.get_close_matches(layer, names, n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    shown = names if len(names) <= 60 else names[:60] + [f"... ({len(names) - 60} more)"]
    raise ValueError(
        f"layer={layer!r} is not a sub-module of {type(generator).__name__}.{hint} "
        f"Valid layers: {', '.join(shown)}."
    )


class _ReachedLayer(Exception):
    """Raised by the hook to stop the forward pass once the layer's output is known."""

    def __init__(self, output: Tensor):
        super().__init__()
        self.output = output


def _as_tensor(output: Any, layer: str) -> Tensor:
    if not isinstance(output, Tensor) or output.dim() != 4:
        shape = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
        raise ValueError(
            f"layer={layer!r} outputs {shape}; PandA needs a convolutional feature map of shape "
            "(N, C, H, W). Choose a layer whose output is one."
        )
    return output


def activations_at(generator: nn.Module, layer: str, run: Callable[[], Any]) -> Tensor:
    """The output ``Z: (N, C, H, W)`` of ``generator``'s sub-module ``layer`` during ``run()``.

    ``run`` performs the forward pass (``lambda: generator(z)``); it is stopped as soon as the
    layer has produced its output, so the layers after it cost nothing.
    """
    module = resolve_layer(generator, layer)

    def stop(_module: nn.Module, _inputs: Any, output: Any) -> None:
        raise _ReachedLayer(_as_tensor(output, layer))

    handle = module.register_forward_hook(stop)
    try:
        run()
    except _ReachedLayer as reached:
        return reached.output
    finally:
        handle.remove()
    raise RuntimeError(f"the forward pass never ran layer={layer!r}; is it used by forward()?")


def with_replaced_output(
    generator: nn.Module, layer: str, edit: Callable[[Tensor], Tensor], run: Callable[[], Any]
) -> Any:
    """The result of ``run()`` with the output ``Z`` of ``layer`` replaced by ``edit(Z)``, so the
    rest of the generator renders the edit (``X' = G_[l:](Z')`` of Sec. 3.3.1)."""
    module = resolve_layer(generator, layer)

    def replace(_module: nn.Module, _inputs: Any, output: Any) -> Tensor:
        return edit(_as_tensor(output, layer))

    handle = module.register_forward_hook(replace)
    try:
        return run()
    finally:
        handle.remove()


@torch.no_grad()
def feature_shape(generator: nn.Module, layer: str, latents: Tensor) -> tuple[int, int, int]:
    """``(C, H, W)`` of the activations at ``layer`` for a batch of ``latents``."""
    return tuple(activations_at(generator, layer, lambda: generator(latents)).shape[1:])
