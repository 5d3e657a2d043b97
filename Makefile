# Two commands do all the set-up on a fresh machine:
#   make fit    fit PandA on the bundled face-photo generator (TensorBoard logs, checkpoint, pictures)
#   make test   run the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# No GPU: the CPU build (torch==2.13.0 lies on this machine's disk), never a multi-GB CUDA build.
TORCH_SPEC ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo 'torch>=2.1' || echo 'torch==2.13.0')

EVAL_VENV ?= .venv-eval

.PHONY: setup fit test test-fast benchmark tensorboard jupyter clear-notebooks eval-env locality-table clean

setup: $(VENV)/.installed

# --system-site-packages: a torch already installed is used as it is, and no other is fetched.
$(VENV)/.installed: setup.cfg pyproject.toml Makefile
	$(PYTHON) -m venv --system-site-packages $(VENV)
	$(BIN)/python -c 'import torch' 2>/dev/null || $(BIN)/python -m pip install '$(TORCH_SPEC)'
	$(BIN)/python -m pip install -e '.[dev]'
	$(BIN)/python -m pip install --no-deps gan-face-generate==1.1.1 omniart-eye-generator==0.1 generateme==0.1.2
	touch $@

fit: setup
	$(BIN)/panda fit --config configs/photo_faces.yaml

test: setup
	$(BIN)/python -m pytest -ra

test-fast: setup
	$(BIN)/python -m pytest -ra -m 'not slow'

benchmark: setup
	$(BIN)/python -m benchmarks.speed.gradients

# MediaPipe's face landmarks for the locality table, in their own environment: mediapipe 0.10.21
# pins numpy<2 and the main environment has numpy 2.
eval-env: $(EVAL_VENV)/.installed

$(EVAL_VENV)/.installed: benchmarks/evidence/requirements-eval.txt
	$(PYTHON) -m venv $(EVAL_VENV)
	$(EVAL_VENV)/bin/python -m pip install -r benchmarks/evidence/requirements-eval.txt
	touch $@

# The paper's Table 2 on the face DCGAN: PandA against SeFa, GANSpace, k-means parts, LowRankGAN and ReSeFa,
# on three splits of the samples and under six variants of the protocol (~46 min),
# with pictures of the regions and of each method's chosen edits, and the results as JSON, in
# runs/locality_table/.
locality-table: setup eval-env
	$(BIN)/python -m benchmarks.evidence.locality --eval_python $(EVAL_VENV)/bin/python --pictures runs/locality_table \
		--json runs/locality_table/table.json

tensorboard: setup
	$(BIN)/tensorboard --logdir runs

# The notebooks of examples/ in JupyterLab (the `notebooks` extra, installed once); JUPYTER_ARGS
# go to it (--allow-root in a container that runs as root, --no-browser, --port 8890, ...).
JUPYTER_ARGS ?=
jupyter: notebooks-extra
	$(BIN)/jupyter lab examples $(JUPYTER_ARGS)

# Before committing a notebook: its outputs and run timings cleared (tests/test_notebooks.py checks).
clear-notebooks: notebooks-extra
	$(BIN)/jupyter nbconvert --clear-output --ClearMetadataPreprocessor.enabled=True \
		--ClearMetadataPreprocessor.clear_notebook_metadata=False --inplace examples/*.ipynb

.PHONY: notebooks-extra
notebooks-extra: setup
	$(BIN)/python -c 'import jupyterlab' 2>/dev/null || $(BIN)/python -m pip install -e '.[notebooks]'

clean:
	rm -rf $(VENV) $(EVAL_VENV) runs lightning_logs *.egg-info
