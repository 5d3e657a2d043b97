"""ImageNet class indices by name, for choosing BigGAN's classes: a selection of well-known
classes (any other is chosen by its index, 0 to 999)."""

from __future__ import annotations

import difflib

IMAGENET_CLASSES = {
    "goldfish": 1, "great white shark": 2, "hen": 8, "ostrich": 9, "bald eagle": 22,
    "jellyfish": 107, "flamingo": 130, "king penguin": 145, "chihuahua": 151,
    "golden retriever": 207, "labrador retriever": 208, "german shepherd": 235,
    "siberian husky": 250, "pug": 254, "samoyed": 258, "red fox": 277, "tabby cat": 281,
    "tiger cat": 282, "persian cat": 283, "egyptian cat": 285, "lion": 291, "tiger": 292,
    "monarch butterfly": 323, "zebra": 340, "african elephant": 386, "giant panda": 388,
    "airliner": 404, "balloon": 417, "lighthouse": 437, "castle": 483, "convertible": 511,
    "fire engine": 555, "school bus": 779, "soccer ball": 805, "space shuttle": 812,
    "sports car": 817, "teddy bear": 850, "tennis ball": 852, "cheeseburger": 933,
    "broccoli": 937, "mushroom": 947, "granny smith": 948, "strawberry": 949, "banana": 954,
    "pizza": 963, "espresso": 967, "alp": 970, "cliff": 972, "coral reef": 973, "lakeside": 975,
    "seashore": 978, "valley": 979, "volcano": 980, "daisy": 985,
}


def imagenet_index(name_or_index: int | str, num_classes: int = 1000) -> int:
    """The ImageNet index of a class given by index or by one of the names of ``IMAGENET_CLASSES``
    (any case); a ``ValueError`` names the closest known names."""
    if isinstance(name_or_index, int):
        if not 0 <= name_or_index < num_classes:
            raise ValueError(f"class {name_or_index} is out of range: ImageNet indices are 0 to {num_classes - 1}.")
        return name_or_index
    name = " ".join(name_or_index.lower().replace("_", " ").split())
    if name in IMAGENET_CLASSES:
        return IMAGENET_CLASSES[name]
    close = difflib.get_close_matches(name, IMAGENET_CLASSES, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(
        f"class {name_or_index!r} is not a known ImageNet class name.{hint} Give any class by its "
        f"index (0 to {num_classes - 1}); known names: {', '.join(IMAGENET_CLASSES)}."
    )
