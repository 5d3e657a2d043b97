"""The generators a config names (``data.generator.class_path``): each a network, filled from its
files or its installed package, that samples its own latents (conditioning included) and may run
from a layer's output on (``forward_from``); and a compact style-modulated generator written here
for examples and tests (``StyleGenerator``)."""
