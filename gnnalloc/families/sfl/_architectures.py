"""Layer tables of real architectures, computed from their layer shapes.

Each model is a sequence of blocks with its forward FLOPs per sample, its parameters and the
number of elements it outputs per sample. Convolutions and linear layers count 2 FLOPs per
multiply-accumulate; attention counts its two matrix products; normalisations, activations,
pooling and residual additions are not counted (they are elementwise, a small share of the
work). Parameters count weights and biases, batch/layer-norm scales and shifts, ViT position
embeddings and class token.

The table of a split after block ``l`` (:func:`layer_table`):

* ``device_flops = 3 x`` the forward FLOPs of blocks ``<= l`` (a training step is one forward
  and a backward of about twice the forward's cost), ``server_flops = 3 x`` the rest;
* ``activation_bits = gradient_bits = 32 x`` the elements block ``l`` outputs (float32);
* ``device_model_bits = 32 x`` the parameters of blocks ``<= l`` (uploaded for aggregation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["ARCHITECTURES", "Block", "layer_table", "resnet18_blocks", "vit_blocks"]

#: FLOPs of a training step relative to the forward pass (forward + backward of twice its cost).
TRAINING_FACTOR = 3.0
#: Bits per element of activations, gradients and parameters (float32).
BITS_PER_VALUE = 32.0


@dataclass(frozen=True)
class Block:
    """One block of a model: forward FLOPs and parameters, and the elements it outputs, per sample."""

    name: str
    flops: float
    params: float
    outputs: float


def _conv(c_in: int, c_out: int, kernel: int, out_size: int) -> tuple[float, float]:
    """(forward FLOPs, parameters) of a bias-free square convolution followed by batch norm."""
    macs = c_in * c_out * kernel * kernel * out_size * out_size
    return 2.0 * macs, float(c_in * c_out * kernel * kernel + 2 * c_out)


def resnet18_blocks(input_size: int = 32, classes: int = 10) -> list[Block]:
    """ResNet-18 (He et al. 2016) as stem, eight basic blocks and head.

    ``input_size = 32`` is the CIFAR variant (3x3 stem convolution, no max-pooling);
    ``input_size = 224`` (or any other) the ImageNet one (7x7 stride-2 stem, 3x3 stride-2 pool).
    """
    if input_size == 32:
        size = 32
        flops, params = _conv(3, 64, 3, size)
    else:
        size = (input_size + 1) // 2
        flops, params = _conv(3, 64, 7, size)
        size = (size + 1) // 2  # max-pooling
    blocks = [Block("stem", flops, params, 64.0 * size * size)]
    channels = 64
    for stage, width in enumerate((64, 128, 256, 512), start=1):
        for index in range(2):
            stride = 2 if (stage > 1 and index == 0) else 1
            out = (size + stride - 1) // stride
            f1, p1 = _conv(channels, width, 3, out)
            f2, p2 = _conv(width, width, 3, out)
            fd, pd = _conv(channels, width, 1, out) if (stride != 1 or channels != width) else (0.0, 0.0)
            blocks.append(Block(f"layer{stage}.{index}", f1 + f2 + fd, p1 + p2 + pd, float(width * out * out)))
            channels, size = width, out
    blocks.append(Block("head", 2.0 * channels * classes, float(channels * classes + classes), float(classes)))
    return blocks


def vit_blocks(
    image: int = 32, patch: int = 4, width: int = 192, depth: int = 6, mlp_ratio: int = 4,
    classes: int = 10,
) -> list[Block]:
    """A Vision Transformer (Dosovitskiy et al. 2021): patch embedding, ``depth`` encoder blocks
    (multi-head self-attention and an MLP, pre-norm) and head, over ``(image/patch)^2 + 1`` tokens."""
    tokens = (image // patch) ** 2 + 1
    patch_values = 3 * patch * patch
    blocks = [Block(
        "embed", 2.0 * (tokens - 1) * patch_values * width,
        float(patch_values * width + width + tokens * width + width), float(tokens * width),
    )]
    hidden = mlp_ratio * width
    for index in range(depth):
        projections = 2.0 * tokens * width * (3 * width + width)  # QKV and output projection
        attention = 2.0 * 2.0 * tokens * tokens * width  # scores and their product with V
        mlp = 2.0 * 2.0 * tokens * width * hidden
        params = 4 * width * width + 4 * width + 2 * width * hidden + hidden + width + 4 * width
        blocks.append(Block(f"block{index + 1}", projections + attention + mlp, float(params), float(tokens * width)))
    blocks.append(Block("head", 2.0 * width * classes, float(2 * width + width * classes + classes), float(classes)))
    return blocks


def layer_table(blocks: list[Block], splits: list[str] | None = None) -> dict[str, np.ndarray | tuple[str, ...]]:
    """The candidate split layers of a model (module docstring): a split after each named block,
    by default after every block but the head. Keys are the instance's layer fields plus ``names``."""
    names = [b.name for b in blocks]
    splits = names[:-1] if splits is None else splits
    flops = np.array([b.flops for b in blocks])
    params = np.array([b.params for b in blocks])
    total = flops.sum()
    index = np.array([names.index(s) for s in splits])
    device = np.cumsum(flops)[index]
    outputs = np.array([blocks[i].outputs for i in index])
    return {
        "names": tuple(splits),
        "device_flops": TRAINING_FACTOR * device,
        "server_flops": TRAINING_FACTOR * (total - device),
        "activation_bits": BITS_PER_VALUE * outputs,
        "gradient_bits": BITS_PER_VALUE * outputs,
        "device_model_bits": BITS_PER_VALUE * np.cumsum(params)[index],
    }


#: Architectures by name: their blocks and the candidate splits (after the stem or embedding
#: and after every residual stage / encoder block).
ARCHITECTURES: dict[str, Callable[[], tuple[list[Block], list[str]]]] = {
    "resnet18-cifar": lambda: (resnet18_blocks(32, 10), ["stem", "layer1.1", "layer2.1", "layer3.1", "layer4.1"]),
    "resnet18-imagenet": lambda: (resnet18_blocks(224, 1000), ["stem", "layer1.1", "layer2.1", "layer3.1", "layer4.1"]),
    "vit-cifar": lambda: (vit_blocks(), ["embed", "block1", "block2", "block3", "block4", "block5", "block6"]),
}
