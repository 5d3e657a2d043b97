"""Reading a generator's activations at a named layer: hooks, so any ``nn.Module`` works.

A layer is the dotted path of a sub-module (``"main.8"``). A sub-module that returns a tuple,
list or dict (a style block's ``(features, rgb)``) is followed by a selector naming the element:
``"synthesis.b16[0]"``, ``"block['features']"``; selectors chain (``"block[0][1]"``).

:func:`activations_at` stops the forward pass at the layer, so nothing after it runs;
:func:`with_replaced_output` runs it whole with the layer's output edited; :func:`layer_outputs`
lists what every layer outputs, to choose one. A generator may name layers by aliases too, in a
``layer_aliases`` dict (StyleGAN2's ``"layer5"`` for ``"synthesis.b16.conv1"``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

Selector = int | str

_SELECTOR = re.compile(r"""\[(?:(\d+)|'([^']*)'|"([^"]*)")\]""")


def split_layer(layer: str) -> tuple[str, tuple[Selector, ...]]:
    """``"synthesis.b16[0]"`` -> ``("synthesis.b16", (0,))``; ``"b['x']"`` -> ``("b", ("x",))``."""
    path, bracket, rest = layer.partition("[")
    rest = bracket + rest
    selectors: list[Selector] = []
    while rest:
        match = _SELECTOR.match(rest)
        if match is None:
            raise ValueError(
                f"layer={layer!r}: {rest!r} is no selector; after the module's dotted path, name an "
                "element of its output with [index] or ['key'], as in 'synthesis.b16[0]'."
            )
        index, *keys = match.groups()
        selectors.append(int(index) if index is not None else next(k for k in keys if k is not None))
        rest = rest[match.end() :]
    return path, tuple(selectors)


def canonical_layer(generator: nn.Module, layer: str) -> str:
    """``layer`` with an alias of ``generator.layer_aliases`` replaced by the path it stands for."""
    path, bracket, rest = layer.partition("[")
    aliases = getattr(generator, "layer_aliases", None) or {}
    return aliases.get(path, path) + bracket + rest


def layer_names(generator: nn.Module) -> list[str]:
    """Dotted paths of every sub-module of ``generator`` (``"main.8"``, ...)."""
    return [name for name, _ in generator.named_modules() if name]


def resolve_layer(generator: nn.Module, layer: str) -> nn.Module:
    """The sub-module of ``layer`` (its selectors aside), or a ``ValueError`` listing valid paths."""
    path, _ = split_layer(canonical_layer(generator, layer))
    modules = dict(generator.named_modules())
    if path in modules and path:
        return modules[path]
    names = layer_names(generator) + list(getattr(generator, "layer_aliases", None) or {})
    close = difflib.get_close_matches(path, names, n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    shown = names if len(names) <= 60 else names[:60] + [f"... ({len(names) - 60} more)"]
    raise ValueError(
        f"layer={layer!r} is not a sub-module of {type(generator).__name__}.{hint} "
        f"Valid layers: {', '.join(shown)}. `panda layers --config ...` lists them with their output shapes."
    )


def _describe(value: Any) -> str:
    return str(tuple(value.shape)) if isinstance(value, Tensor) else type(value).__name__


def _elements(value: Any) -> list[tuple[str, Any]]:
    """``("[i]", element)`` of a tuple or list, ``("['k']", element)`` of a dict; else none."""
    if isinstance(value, Mapping):
        return [(f"[{key!r}]", element) for key, element in value.items()]
    if isinstance(value, (tuple, list)):
        return [(f"[{i}]", element) for i, element in enumerate(value)]
    return []


def _pick(output: Any, selectors: tuple[Selector, ...], layer: str) -> Tensor:
    """The element of ``output`` that ``layer``'s selectors name, checked to be ``(N, C, H, W)``."""
    for selector in selectors:
        if isinstance(output, Tensor):
            raise ValueError(
                f"layer={layer!r} selects [{selector!r}] from a tensor {_describe(output)}: drop the selector."
            )
        elements, wanted = dict(_elements(output)), f"[{selector!r}]"  # named as layer_outputs lists them
        if wanted not in elements:
            raise ValueError(
                f"layer={layer!r}: the output ({type(output).__name__}) has no element {wanted}; "
                f"its elements: {', '.join(f'{name} {_describe(e)}' for name, e in elements.items()) or 'none'}."
            )
        output = elements[wanted]
    if isinstance(output, Tensor) and output.dim() == 4:
        return output
    elements = _elements(output)
    if elements:
        named = ", ".join(f"'{layer}{name}' {_describe(e)}" for name, e in elements)
        raise ValueError(
            f"layer={layer!r} outputs a {type(output).__name__}, not a tensor; name one of its elements: {named}."
        )
    raise ValueError(
        f"layer={layer!r} outputs {_describe(output)}; PandA needs a convolutional feature map of shape "
        "(N, C, H, W). Choose a layer whose output is one (`panda layers --config ...` lists them)."
    )


def _replace(output: Any, selectors: tuple[Selector, ...], new: Tensor) -> Any:
    """``output`` with the element that ``selectors`` name replaced by ``new``, its container kept."""
    if not selectors:
        return new
    head, rest = selectors[0], selectors[1:]
    if isinstance(output, Mapping):
        copy = output.copy() if hasattr(output, "copy") else dict(output)
        copy[head] = _replace(output[head], rest, new)
        return copy
    items = list(output)
    items[head] = _replace(items[head], rest, new)
    if hasattr(output, "_fields"):  # a namedtuple
        return type(output)(*items)
    return type(output)(items)


class _ReachedLayer(Exception):
    """Raised by the hook to stop the forward pass once the layer's output is known."""

    def __init__(self, output: Tensor):
        super().__init__()
        self.output = output


def activations_at(generator: nn.Module, layer: str, run: Callable[[], Any]) -> Tensor:
    """The output ``Z: (N, C, H, W)`` of ``generator``'s layer ``layer`` during ``run()``.

    ``run`` performs the forward pass (``lambda: generator(z)``); it is stopped as soon as the
    layer has produced its output, so the layers after it cost nothing. A module that runs
    several times in one pass gives its first output.
    """
    module = resolve_layer(generator, layer)
    _, selectors = split_layer(canonical_layer(generator, layer))

    def stop(_module: nn.Module, _inputs: Any, output: Any) -> None:
        raise _ReachedLayer(_pick(output, selectors, layer))

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
    rest of the generator renders the edit (``X' = G_[l:](Z')`` of Sec. 3.3.1).

    Only the first output of a module that runs several times is edited: the one that
    :func:`activations_at` reads, and so the one the factors were fitted on.
    """
    module = resolve_layer(generator, layer)
    _, selectors = split_layer(canonical_layer(generator, layer))
    done = False

    def replace(_module: nn.Module, _inputs: Any, output: Any) -> Any:
        nonlocal done
        if done:
            return output
        done = True
        return _replace(output, selectors, edit(_pick(output, selectors, layer)))

    handle = module.register_forward_hook(replace)
    try:
        return run()
    finally:
        handle.remove()


@torch.no_grad()
def feature_shape(generator: nn.Module, layer: str, latents: Tensor) -> tuple[int, int, int]:
    """``(C, H, W)`` of the activations at ``layer`` for a batch of ``latents``."""
    return tuple(activations_at(generator, layer, lambda: generator(latents)).shape[1:])


@dataclass
class LayerOutput:
    """What one layer outputs in a forward pass.

    Attributes:
        layer: the name ``data.layer`` takes, with a selector for an element of a tuple or dict.
        output: the output's shape with the batch first, or its type when it is no tensor.
        calls: how often the module ran in the pass (0: never; more than 1: its first output counts).
        usable: whether it is a feature map ``(N, C, H, W)`` that PandA can factorise.
        alias: the generator's other name for the layer (``layer_aliases``), if any.
    """

    layer: str
    output: str
    calls: int
    usable: bool
    alias: str = ""


@torch.no_grad()
def layer_outputs(generator: nn.Module, run: Callable[[], Any]) -> list[LayerOutput]:
    """Every layer of ``generator`` with its output during ``run()``, in the order they are
    computed (a module after its sub-modules); tuple and dict outputs are listed element by
    element; modules the pass never runs come last."""
    first: dict[str, Any] = {}
    calls: dict[str, int] = {}

    def record(name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            calls[name] = calls.get(name, 0) + 1
            first.setdefault(name, output)

        return hook

    named = [(name, module) for name, module in generator.named_modules() if name]
    handles = [module.register_forward_hook(record(name)) for name, module in named]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()

    aliases = {path: alias for alias, path in (getattr(generator, "layer_aliases", None) or {}).items()}

    def flatten(layer: str, output: Any, count: int) -> list[LayerOutput]:
        elements = _elements(output)
        if not elements:
            usable = isinstance(output, Tensor) and output.dim() == 4
            return [LayerOutput(layer, _describe(output), count, usable, aliases.get(layer, ""))]
        return [row for name, element in elements for row in flatten(layer + name, element, count)]

    ran = [row for name in first for row in flatten(name, first[name], calls[name])]
    never = [LayerOutput(name, "-", 0, False, aliases.get(name, "")) for name, _ in named if name not in first]
    return ran + never


def layer_table(rows: list[LayerOutput], generator: str, configured: str | None = None) -> str:
    """:func:`layer_outputs` as ``panda layers`` prints them, one line each, ``*`` marking the
    feature maps PandA can factorise; with ``configured``, a last line on whether it is one.
    ``generator``: the network's name, for the first line."""
    width = max(len(row.layer) for row in rows)
    lines = [
        f"Layers of {generator} on one sample, in the order the forward pass computes them; "
        "* marks a feature map (N, C, H, W) that data.layer can name:"
    ]
    for row in rows:
        notes = {0: ["not run by forward(): a container, or unused"], 1: []}.get(
            row.calls, [f"runs {row.calls} times: its first output counts"]
        )
        notes += [f"also {row.alias}"] if row.alias else []
        notes += ["<- data.layer"] if configured in (row.layer, row.alias) else []
        lines.append(f"{'*' if row.usable else ' '} {row.layer:<{width}}  {row.output:<18}  {'; '.join(notes)}".rstrip())
    if configured is None:
        return "\n".join(lines)
    usable = [name for row in rows if row.usable for name in (row.layer, row.alias) if name]
    chosen = next((row for row in rows if configured in (row.layer, row.alias)), None)
    elements = [name for name in usable if name.startswith(configured + "[")]
    if chosen is not None and chosen.usable:
        verdict = f"data.layer={configured!r} outputs {chosen.output}: PandA can factorise it."
    elif chosen is not None:
        verdict = f"data.layer={configured!r} outputs {chosen.output}, not a feature map (N, C, H, W): choose a layer marked *."
    elif elements:
        verdict = f"data.layer={configured!r} outputs several tensors: name one, such as {elements[0]!r}."
    else:
        close = difflib.get_close_matches(configured, usable, n=3)
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        verdict = f"data.layer={configured!r} is none of these layers{hint}: choose a layer marked *."
    return "\n".join(lines + [verdict])
