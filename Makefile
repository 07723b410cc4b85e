# Set-up and the everyday commands. `make test` and `make demo` create the
# virtual environment on first use.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
# torch first: the fastest to train, it makes the trained test models that
# the other backends' sessions then load.
BACKENDS ?= torch jax tensorflow
DEMO_BACKEND ?= jax

.PHONY: install test demo bench suite real-text serving distribution lint format clean

# --no-compile: Python compiles the modules it imports when it first imports
# them, instead of pip compiling all of tensorflow, jax and torch up front.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet --no-compile -e ".[test]"
	touch $@

install: $(VENV)/.installed

# One pytest per backend, each spread over two worker processes (a test
# module stays on one worker, so its fixtures are built once); every backend
# runs even if an earlier one fails; the slowest tests are listed at the end.
# Under JAX the workers, and the processes they start, share what XLA
# compiled through a cache folder that lives as long as the run; the
# backends share another (KERAS_TRANSFORMER_TEST_SHARED) for files that do
# not depend on the backend, such as a test model's trained weights.
test: install
	@failed=""; jax_cache=$$(mktemp -d); shared=$$(mktemp -d); \
	export JAX_COMPILATION_CACHE_DIR=$$jax_cache JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 \
		JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=0 KERAS_TRANSFORMER_TEST_SHARED=$$shared; \
	for backend in $(BACKENDS); do \
		echo "=== KERAS_BACKEND=$$backend"; \
		KERAS_BACKEND=$$backend $(PYTHON) -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --durations=15 || failed="$$failed $$backend"; \
	done; \
	rm -rf $$jax_cache $$shared; \
	if [ -n "$$failed" ]; then echo "FAILED on:$$failed"; exit 1; fi

# English number words to French, trained, evaluated and saved to runs/numbers.
demo: install
	KERAS_BACKEND=$(DEMO_BACKEND) $(PYTHON) examples/translate_numbers.py --out runs/numbers

# Speed against keras-nlp and keras under every backend; see docs/benchmarks.md.
bench: install
	$(PYTHON) -m benchmarks training generation attention
	$(PYTHON) -m benchmarks training --size large --steps 4 --repeats 4
	$(PYTHON) -m benchmarks generation --d-model 128 --layers 2 --batch 16 --tokens 48

# The training defaults on seven generated tasks (JAX); see docs/tasks.md.
suite: install
	KERAS_BACKEND=jax $(PYTHON) -m benchmarks.suite --save

# The defaults on real software messages beside the keras.io recipe and
# Sockeye, 10 training minutes each (JAX); see docs/real_text.md.
real-text: install
	KERAS_BACKEND=jax $(PYTHON) -m benchmarks.real_text --save

# `keras-transformer serve` under load and faults, over loopback, about 7
# minutes (JAX); see docs/serving.md.
serving: install
	$(PYTHON) -m benchmarks.serving --save

# Two processes against one over the same CPU devices, a killed process and
# its resumption, on JAX then TensorFlow: about 15 minutes on a 2-core CPU;
# see docs/distribution.md.
distribution: install
	KERAS_BACKEND=jax $(PYTHON) -m benchmarks.distribution --save
	KERAS_BACKEND=jax $(PYTHON) -m benchmarks.distribution --backend tensorflow --save

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) runs .pytest_cache
