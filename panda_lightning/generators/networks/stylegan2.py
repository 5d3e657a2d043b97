"""StyleGAN2's generator (Karras et al., "Analyzing and Improving the Image Quality of StyleGAN",
CVPR 2020), written here from the paper in plain PyTorch: no compiled plug-in, any device.

The modules take the arguments and hold the tensors under the names that NVIDIA's
stylegan2-ada-pytorch records in its network pickles (``mapping.fc0.weight``,
``synthesis.b16.conv0.affine.bias``, ``noise_const``, ...), so that a pickle's init arguments
build the module and its tensors load by name. Computation is float32 throughout (NVIDIA runs
the highest resolutions in float16 on a GPU; ``num_fp16_res`` is accepted and changes nothing).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from panda_lightning.generators.networks.resampling import fir_filter, upfirdn2d, upsample2d

# activation -> (function of x and the negative slope, gain that keeps the second moment)
ACTIVATIONS = {
    "linear": (lambda x, slope: x, 1.0),
    "relu": (lambda x, slope: F.relu(x), math.sqrt(2)),
    "lrelu": (lambda x, slope: F.leaky_relu(x, slope), math.sqrt(2)),
}
NOISE_MODES = ("const", "random", "none")


def normalize_2nd_moment(x: Tensor, eps: float = 1e-8) -> Tensor:
    """``x: (N, D)`` scaled to unit mean square per row (the mapping network's input)."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def bias_act(x: Tensor, bias: Tensor | None, activation: str = "linear", gain: float | None = None,
             clamp: float | None = None, slope: float = 0.2) -> Tensor:
    """``clamp(gain * act(x + bias))``, the bias along dim 1; ``gain`` defaults to the activation's,
    ``slope`` is the leaky ReLU's on the negative side."""
    function, default_gain = ACTIVATIONS[activation]
    if bias is not None:
        x = x + bias.reshape([-1 if dim == 1 else 1 for dim in range(x.dim())])
    x = function(x, slope)
    gain = default_gain if gain is None else gain
    if gain != 1:
        x = x * gain
    return x if clamp is None else x.clamp(-clamp, clamp)


def modulated_conv2d(
    x: Tensor, weight: Tensor, styles: Tensor, noise: Tensor | None = None, up: int = 1, padding: int = 0,
    kernel: Tensor | None = None, demodulate: bool = True, normalize_first: bool = False,
    input_gain: Tensor | None = None,
) -> Tensor:
    """Eq. 1-3 of StyleGAN2: ``weight: (O, I, k, k)`` scaled per sample by ``styles: (N, I)``,
    each output filter rescaled to unit norm (demodulation), applied to ``x: (N, I, H, W)`` as one
    grouped convolution. With ``up = 2``: a transposed convolution, then the FIR ``kernel``.

    StyleGAN3's variant: ``normalize_first`` scales ``weight`` and ``styles`` to unit mean square
    before (which demodulation then undoes, but which bounds the float16 range), and
    ``input_gain`` (a scalar) scales the input channels."""
    batch, in_channels = styles.shape
    out_channels, _, kernel_h, kernel_w = weight.shape
    if demodulate and normalize_first:
        weight = weight * weight.square().mean([1, 2, 3], keepdim=True).rsqrt()
        styles = styles * styles.square().mean().rsqrt()
    w = weight.unsqueeze(0) * styles.reshape(batch, 1, -1, 1, 1)  # (N, O, I, k, k)
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt().reshape(batch, -1, 1, 1, 1)
    if input_gain is not None:
        w = w * input_gain.expand(batch, in_channels).reshape(batch, 1, -1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])  # the batch as groups: one convolution, each sample its own weights
    if up == 1:
        x = F.conv2d(x, w.reshape(-1, in_channels, kernel_h, kernel_w), padding=padding, groups=batch)
    else:
        w = w.transpose(1, 2).reshape(batch * in_channels, out_channels, kernel_h, kernel_w)
        taps = kernel.shape[-1]
        before = padding + (taps + up - 1) // 2 - (kernel_w - 1)
        after = padding + (taps - up) // 2 - (kernel_w - up)
        trim = max(min(-before, -after), 0)  # what the transposed convolution can pad away itself
        x = F.conv_transpose2d(x, w, stride=up, padding=trim, groups=batch)
        before, after = before + trim, after + trim
        x = upfirdn2d(x, kernel, padding=(before, after, before, after), gain=up**2)
    x = x.reshape(batch, -1, *x.shape[2:])
    return x if noise is None else x + noise


class FullyConnectedLayer(nn.Module):
    """``act(x W^T g + b g_b)`` with the equalised learning rate: ``W ~ N(0, weight_init^2) / lr``
    and ``b = bias_init / lr`` stored, ``g = lr / sqrt(in_features)``, ``g_b = lr``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: float | Sequence[float] = 0.0, weight_init: float = 1.0):
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) * (weight_init / lr_multiplier))
        initial_bias = torch.as_tensor(bias_init, dtype=torch.float32).expand(out_features) / lr_multiplier
        self.bias = nn.Parameter(initial_bias.clone()) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight * self.weight_gain
        b = self.bias
        if b is not None and self.bias_gain != 1:
            b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, self.activation)


class MappingNetwork(nn.Module):
    """``z`` (and a label ``c``, embedded) -> ``w``, broadcast to ``num_ws`` copies, truncated
    towards ``w_avg`` (the moving mean of ``w`` recorded in training) by ``psi``."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int, num_layers: int = 8,
                 embed_features: int | None = None, layer_features: int | None = None, activation: str = "lrelu",
                 lr_multiplier: float = 0.01, w_avg_beta: float | None = 0.995):
        super().__init__()
        self.z_dim, self.c_dim, self.num_ws, self.num_layers = z_dim, c_dim, num_ws, num_layers
        embed_features = 0 if c_dim == 0 else w_dim if embed_features is None else embed_features
        layer_features = w_dim if layer_features is None else layer_features
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for index in range(num_layers):
            self.add_module(f"fc{index}", FullyConnectedLayer(
                features[index], features[index + 1], activation=activation, lr_multiplier=lr_multiplier
            ))
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: Tensor, c: Tensor | None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None) -> Tensor:
        parts = []
        if self.z_dim > 0:
            parts.append(normalize_2nd_moment(z.float()))
        if self.c_dim > 0:
            parts.append(normalize_2nd_moment(self.embed(c.float())))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for index in range(self.num_layers):
            x = getattr(self, f"fc{index}")(x)
        ws = x.unsqueeze(1).repeat([1, self.num_ws, 1])  # (N, num_ws, w_dim)
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            truncated = self.w_avg.lerp(ws[:, :cutoff], truncation_psi)
            ws = torch.cat([truncated, ws[:, cutoff:]], dim=1)
        return ws


class SynthesisLayer(nn.Module):
    """A modulated 3x3 convolution (upsampling with ``up = 2``), per-pixel noise scaled by a
    learnt strength, bias and leaky ReLU: StyleGAN2's Fig. 2d."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, kernel_size: int = 3,
                 up: int = 1, use_noise: bool = True, activation: str = "lrelu",
                 resample_filter: Sequence[float] = (1, 3, 3, 1), conv_clamp: float | None = None,
                 channels_last: bool = False):
        super().__init__()
        self.resolution, self.up, self.use_noise, self.activation = resolution, up, use_noise, activation
        self.conv_clamp = conv_clamp
        self.padding = kernel_size // 2
        self.register_buffer("resample_filter", fir_filter(resample_filter))
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        if use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: Tensor, w: Tensor, noise_mode: str = "const") -> Tensor:
        noise = None
        if self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        elif self.use_noise and noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device) * self.noise_strength
        x = modulated_conv2d(x, self.weight, self.affine(w), noise, self.up, self.padding, self.resample_filter)
        return bias_act(x, self.bias, self.activation, clamp=self.conv_clamp)


class ToRGBLayer(nn.Module):
    """A modulated 1x1 convolution to the image's channels, not demodulated."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1,
                 conv_clamp: float | None = None, channels_last: bool = False):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        x = modulated_conv2d(x, self.weight, self.affine(w) * self.weight_gain, demodulate=False)
        return bias_act(x, self.bias, clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution: ``conv0`` (upsampling; the first block starts from a learnt constant
    instead), ``conv1``, and ``torgb``, whose image adds to the upsampled image so far
    ("skip"; "orig" converts only the last block). Returns ``(features, image)``."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 is_last: bool, architecture: str = "skip", resample_filter: Sequence[float] = (1, 3, 3, 1),
                 conv_clamp: float | None = None, use_fp16: bool = False, fp16_channels_last: bool = False,
                 **layer_kwargs):
        super().__init__()
        self.in_channels = in_channels
        self.register_buffer("resample_filter", fir_filter(resample_filter))
        self.num_conv = 1 if in_channels == 0 else 2
        self.num_torgb = 1 if is_last or architecture == "skip" else 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp, **layer_kwargs)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp,
                                    **layer_kwargs)
        if self.num_torgb:
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)

    def forward(self, x: Tensor | None, img: Tensor | None, ws: Tensor, noise_mode: str = "const"
                ) -> tuple[Tensor, Tensor | None]:
        ws = ws.unbind(dim=1)  # (N, num_conv + num_torgb, w_dim): one w per layer
        if self.in_channels == 0:
            x = self.conv1(self.const.unsqueeze(0).repeat([ws[0].shape[0], 1, 1, 1]), ws[0], noise_mode)
        else:
            x = self.conv1(self.conv0(x, ws[0], noise_mode), ws[1], noise_mode)
        if img is not None:
            img = upsample2d(img, self.resample_filter)
        if self.num_torgb:
            rgb = self.torgb(x, ws[-1])
            img = rgb if img is None else img + rgb
        return x, img


class SynthesisNetwork(nn.Module):
    """``ws: (N, num_ws, w_dim)`` -> image, through blocks ``b4, b8, ..., b{img_resolution}`` of
    ``min(channel_base // resolution, channel_max)`` channels each."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, num_fp16_res: int = 0, **block_kwargs):
        super().__init__()
        self.resolutions = [2**i for i in range(2, int(math.log2(img_resolution)) + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.resolutions}
        self.num_ws = 0
        for res in self.resolutions:
            block = SynthesisBlock(channels[res // 2] if res > 4 else 0, channels[res], w_dim, res, img_channels,
                                   is_last=res == img_resolution, **block_kwargs)
            self.num_ws += block.num_conv + (block.num_torgb if res == img_resolution else 0)
            self.add_module(f"b{res}", block)

    def forward(self, ws: Tensor, noise_mode: str = "const") -> Tensor:
        x = img = None
        first = 0
        for res in self.resolutions:
            block = getattr(self, f"b{res}")
            # A block's to-RGB layer shares its w with the next block's first convolution.
            x, img = block(x, img, ws.narrow(1, first, block.num_conv + block.num_torgb), noise_mode)
            first += block.num_conv
        return img

    def convolutions(self) -> list[str]:
        """The styled convolutions in the order they run: ``"b4.conv1", "b8.conv0", ...``."""
        return [f"b{res}.{conv}" for res in self.resolutions for conv in ("conv0", "conv1")
                if hasattr(getattr(self, f"b{res}"), conv)]
