"""StyleGAN3's synthesis network (Karras et al., "Alias-Free Generative Adversarial Networks",
NeurIPS 2021), written here from the paper in plain PyTorch: no compiled plug-in, any device.

Fourier features turned and shifted by ``w`` (Sec. 3.2), then layers that each modulate a
convolution and apply the leaky ReLU at a higher sampling rate between a low-pass up- and
down-sampling filter (Sec. 3.2, "filtered non-linearities"), on a schedule of cutoffs and
stopbands that rises from ``first_cutoff`` to the image's Nyquist frequency (App. F). Config-T
has 3x3 convolutions and separable filters; config-R 1x1 convolutions and radially symmetric
down-sampling filters. Arguments and tensor names are those of NVIDIA's network pickles
(``synthesis.L3_52_27.weight``, ``magnitude_ema``, ``up_filter``, ...). Float32 throughout.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from panda_lightning.generators.networks.resampling import kaiser_lowpass, upfirdn2d
from panda_lightning.generators.networks.stylegan2 import FullyConnectedLayer, bias_act, modulated_conv2d


def filtered_lrelu(x: Tensor, up_filter: Tensor | None, down_filter: Tensor | None, bias: Tensor, up: int, down: int,
                   padding: list[int], gain: float, slope: float, clamp: float | None) -> Tensor:
    """Bias, ``up``-sample through ``up_filter``, leaky ReLU (scaled by ``gain``, clamped), then
    low-pass ``down_filter`` and keep every ``down``-th sample: the non-linearity at a rate where
    its new frequencies do not alias."""
    x = bias_act(x, bias)
    x = upfirdn2d(x, up_filter, up=up, padding=padding, gain=up**2)
    x = bias_act(x, None, "lrelu", gain=gain, clamp=clamp, slope=slope)
    return upfirdn2d(x, down_filter, down=down)


class SynthesisInput(nn.Module):
    """``channels`` Fourier features on a ``size``-pixel grid, their frequencies and phases turned
    and shifted by the rotation and translation that ``w`` gives (Sec. 3.2), then a ``channels
    x channels`` linear map. ``transform`` is a user's inverse transform of the image."""

    def __init__(self, w_dim: int, channels: int, size: int, sampling_rate: float, bandwidth: float):
        super().__init__()
        self.channels, self.size, self.sampling_rate, self.bandwidth = channels, int(size), sampling_rate, bandwidth
        frequencies = torch.randn(channels, 2)
        radii = frequencies.square().sum(dim=1, keepdim=True).sqrt()
        frequencies /= radii * radii.square().exp().pow(0.25)
        self.weight = nn.Parameter(torch.randn(channels, channels))
        self.affine = FullyConnectedLayer(w_dim, 4, weight_init=0, bias_init=[1, 0, 0, 0])
        self.register_buffer("transform", torch.eye(3, 3))
        self.register_buffer("freqs", frequencies * bandwidth)
        self.register_buffer("phases", torch.rand(channels) - 0.5)

    def forward(self, w: Tensor) -> Tensor:
        batch = w.shape[0]
        t = self.affine(w)  # (cos, sin, t_x, t_y), the rotation normalised to unit length
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        rotation = torch.eye(3, device=w.device).unsqueeze(0).repeat([batch, 1, 1])
        rotation[:, 0, 0], rotation[:, 0, 1], rotation[:, 1, 0], rotation[:, 1, 1] = t[:, 0], -t[:, 1], t[:, 1], t[:, 0]
        translation = torch.eye(3, device=w.device).unsqueeze(0).repeat([batch, 1, 1])
        translation[:, 0, 2], translation[:, 1, 2] = -t[:, 2], -t[:, 3]
        transforms = rotation @ translation @ self.transform.unsqueeze(0)
        phases = self.phases.unsqueeze(0) + (self.freqs.unsqueeze(0) @ transforms[:, :2, 2:]).squeeze(2)
        frequencies = self.freqs.unsqueeze(0) @ transforms[:, :2, :2]  # (N, C, 2)
        # Frequencies above the bandwidth fade out before they reach the Nyquist frequency.
        amplitudes = (1 - (frequencies.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)
        theta = torch.eye(2, 3, device=w.device)
        theta[0, 0] = theta[1, 1] = 0.5 * self.size / self.sampling_rate
        grid = F.affine_grid(theta.unsqueeze(0), [1, 1, self.size, self.size], align_corners=False)  # (1, H, W, 2)
        x = (grid.unsqueeze(3) @ frequencies.permute(0, 2, 1).unsqueeze(1).unsqueeze(2)).squeeze(3)  # (N, H, W, C)
        x = torch.sin((x + phases.unsqueeze(1).unsqueeze(2)) * (np.pi * 2)) * amplitudes.unsqueeze(1).unsqueeze(2)
        x = x @ (self.weight / np.sqrt(self.channels)).t()
        return x.permute(0, 3, 1, 2)


class SynthesisLayer(nn.Module):
    """A modulated convolution (``conv_kernel`` wide, 1x1 for the last, to-RGB layer), then the
    filtered leaky ReLU from the input's sampling rate and cutoff to the output's."""

    def __init__(self, w_dim: int, is_torgb: bool, is_critically_sampled: bool, use_fp16: bool, in_channels: int,
                 out_channels: int, in_size: int, out_size: int, in_sampling_rate: int, out_sampling_rate: int,
                 in_cutoff: float, out_cutoff: float, in_half_width: float, out_half_width: float, conv_kernel: int = 3,
                 filter_size: int = 6, lrelu_upsampling: int = 2, use_radial_filters: bool = False,
                 conv_clamp: float | None = 256, magnitude_ema_beta: float = 0.999):
        super().__init__()
        self.is_torgb, self.conv_clamp = is_torgb, conv_clamp
        self.conv_kernel = 1 if is_torgb else conv_kernel
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, self.conv_kernel, self.conv_kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("magnitude_ema", torch.ones([]))  # the input's mean square in training
        rate = max(in_sampling_rate, out_sampling_rate) * (1 if is_torgb else lrelu_upsampling)
        self.up_factor, self.down_factor = round(rate / in_sampling_rate), round(rate / out_sampling_rate)
        up_taps = filter_size * self.up_factor if self.up_factor > 1 and not is_torgb else 1
        down_taps = filter_size * self.down_factor if self.down_factor > 1 and not is_torgb else 1
        self.register_buffer("up_filter", kaiser_lowpass(up_taps, in_cutoff, in_half_width * 2, rate))
        self.register_buffer("down_filter", kaiser_lowpass(
            down_taps, out_cutoff, out_half_width * 2, rate, radial=use_radial_filters and not is_critically_sampled
        ))
        # Padding that puts the samples where the symmetric interpretation has them (App. C.3).
        total = (out_size - 1) * self.down_factor + 1 - (in_size + self.conv_kernel - 1) * self.up_factor
        total += up_taps + down_taps - 2
        low = (total + self.up_factor) // 2
        self.padding = [low, total - low, low, total - low]

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        styles = self.affine(w)
        if self.is_torgb:
            styles = styles * (1 / math.sqrt(self.weight.shape[1] * self.conv_kernel**2))
        x = modulated_conv2d(x, self.weight, styles, padding=self.conv_kernel - 1, demodulate=not self.is_torgb,
                             normalize_first=True, input_gain=self.magnitude_ema.rsqrt())
        gain, slope = (1, 1) if self.is_torgb else (math.sqrt(2), 0.2)
        return filtered_lrelu(x, self.up_filter, self.down_filter, self.bias, self.up_factor, self.down_factor,
                              self.padding, gain, slope, self.conv_clamp)


class SynthesisNetwork(nn.Module):
    """``ws: (N, num_layers + 2, w_dim)`` -> image: ``input``, then layers
    ``L{i}_{size}_{channels}`` for ``i = 0 ... num_layers`` (the last converts to RGB)."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, num_layers: int = 14, num_critical: int = 2, first_cutoff: float = 2,
                 first_stopband: float = 2**2.1, last_stopband_rel: float = 2**0.3, margin_size: int = 10,
                 output_scale: float = 0.25, num_fp16_res: int = 4, **layer_kwargs):
        super().__init__()
        self.num_ws, self.output_scale = num_layers + 2, output_scale
        # App. F: cutoffs and stopbands rise geometrically to the last critically sampled layers.
        last_cutoff = img_resolution / 2
        exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
        cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
        stopbands = first_stopband * (last_cutoff * last_stopband_rel / first_stopband) ** exponents
        rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
        half_widths = np.maximum(stopbands, rates / 2) - cutoffs
        sizes = rates + margin_size * 2
        sizes[-2:] = img_resolution
        channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
        channels[-1] = img_channels
        self.input = SynthesisInput(w_dim, int(channels[0]), int(sizes[0]), rates[0], cutoffs[0])
        self.layer_names = []
        for index in range(num_layers + 1):
            previous = max(index - 1, 0)
            layer = SynthesisLayer(
                w_dim, is_torgb=index == num_layers, is_critically_sampled=index >= num_layers - num_critical,
                use_fp16=False, in_channels=int(channels[previous]), out_channels=int(channels[index]),
                in_size=int(sizes[previous]), out_size=int(sizes[index]), in_sampling_rate=int(rates[previous]),
                out_sampling_rate=int(rates[index]), in_cutoff=cutoffs[previous], out_cutoff=cutoffs[index],
                in_half_width=half_widths[previous], out_half_width=half_widths[index], **layer_kwargs,
            )
            name = f"L{index}_{int(sizes[index])}_{int(channels[index])}"
            self.add_module(name, layer)
            self.layer_names.append(name)

    def forward(self, ws: Tensor) -> Tensor:
        ws = ws.unbind(dim=1)
        x = self.input(ws[0])
        for name, w in zip(self.layer_names, ws[1:]):
            x = getattr(self, name)(x, w)
        return x * self.output_scale if self.output_scale != 1 else x
