"""The paper's Table 2 on the bundled face DCGAN: how local each method's edits are, in face
regions that no method produced, at matched edit strengths.

    python -m benchmarks.evidence.locality --eval_python .venv-eval/bin/python [--quick] [--pictures DIR] [--json PATH]

- ``protocol``: the samples and their face regions (MediaPipe, in ``.venv-eval``), the
  candidate edits, and choosing and scoring one edit per method and region, with the one
  ROIR and "unchanged" rule;
- ``methods``: how each method (SeFa, GANSpace, k-means parts, PandA) is trained, timed, and
  becomes candidate edits;
- ``baselines``: SeFa, GANSpace and k-means parts as pure functions on tensors;
- ``comparison``: matched edit strengths;
- ``report``: the printed tables, the pictures and the results as JSON;
- ``__main__``: the command line and the run.
"""
