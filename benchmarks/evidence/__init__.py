"""The paper's evidence, measured here: what makes the parts local (the ablations of Fig. 10), the
parts from coarse to fine (the rank sweep), how well saliency localises face regions, how local
part edits are (ROIR), and the paper's Table 2 against the peers (``locality``). The face regions
come from MediaPipe in its own environment (``make eval-env``, ``requirements-eval.txt``)."""
