"""What the golden scripts of StyleGAN2 share: every tensor of a random network moved off its
initial value, so that biases, noise strengths and ``w_avg`` all count in the outputs."""

import torch


def move_off_initial_values(G: torch.nn.Module) -> None:
    """Noise strengths drawn, biases shifted, other weights (but the constant input) scaled by
    ``1 + 0.1 N(0, 1)``, ``w_avg`` drawn; from torch's global generator, in parameter order."""
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.copy_(torch.randn([]) * 0.5)
            elif name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.2)
            elif not name.endswith("const"):
                p.mul_(1 + 0.1 * torch.randn_like(p))
        G.mapping.w_avg.copy_(torch.randn_like(G.mapping.w_avg))
