"""PandA's math as pure functions on tensors; nothing here imports Lightning.

- ``factorization``: the model ``Z_i ~ A (A^T Z_i P) P^T`` (Eq. 1-3), its loss and gradients
  (Eq. 4-5), HOSVD initialisation and the projections.
- ``algorithm``: Algorithm 1, one iteration of projected block-coordinate descent.
- ``convergence``: when a streamed fit has converged, on the held-out error.
- ``refinement``: each sample's own parts (Sec. 4.2-4.3, Algorithm 2).
- ``editing``: the uses: local edits, saliency, removal, rewriting, ranking (Sec. 3.3.1, 5).
- ``validation``: argument checks with helpful messages.
"""
