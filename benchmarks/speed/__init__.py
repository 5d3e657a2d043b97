"""Speed and memory: the factored gradients, the fit against the reference code's loop (``race``),
``make fit``'s time, fits on one and two processes, the full-size StyleGAN2 shape, the editor's
latency, and refinement's cost."""
