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

# The demo runs the embedded teacher through llama.cpp (a ~12 min source build the first time;
# pip caches the wheel), trains and evaluates the end model, and chats through the service.
$(VENV)/.installed-demo: pyproject.toml | $(PY)
	$(PIP) install -q -e ".[tokenize,end,cloud,cloud-local,eval,serve,kb]"
	touch $@

# Tests include the llama.cpp serving backend: the same cached llama-cpp-python wheel as the demo.
$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PIP) install -q -e ".[tokenize,end,cloud,cloud-local,eval,serve,kb,test]"
	touch $@ $(VENV)/.installed-demo  # a superset of the demo's extras

install: $(VENV)/.installed-test

demo: $(VENV)/.installed-demo
	$(VENV)/bin/endcloud demo

test: $(VENV)/.installed-test
	$(PY) -m pytest -q

clean-venv:
	rm -rf $(VENV)
