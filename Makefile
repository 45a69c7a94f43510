# Two commands: `make demo` and `make test`. Both create the virtual environments they need.
PYTHON ?= python3
VENV_A := .venv-a
VENV_B := .venv-b
PIP_FLAGS := --disable-pip-version-check -q
PYTEST_FLAGS ?= -q -p no:cacheprovider

.PHONY: demo test test-a test-b lint typecheck docs bench clean venvs

# Line A: aiobotocore 2.25.x with aioboto3. Line B: the newest aiobotocore 3.x.
$(VENV_A)/.stamp: pyproject.toml requirements/line-a.txt
	$(PYTHON) -m venv $(VENV_A)
	$(VENV_A)/bin/python -m pip install $(PIP_FLAGS) -r requirements/line-a.txt > $(VENV_A)/pip.log 2>&1 \
		|| { grep -v "^WARNING: Location" $(VENV_A)/pip.log; exit 1; }
	$(VENV_A)/bin/python -c "import aiorefresh, aioboto3, aiobotocore; assert aiobotocore.__version__.startswith('2.25')"
	touch $@

$(VENV_B)/.stamp: pyproject.toml requirements/line-b.txt
	$(PYTHON) -m venv $(VENV_B)
	$(VENV_B)/bin/python -m pip install $(PIP_FLAGS) -r requirements/line-b.txt > $(VENV_B)/pip.log 2>&1 \
		|| { grep -v "^WARNING: Location" $(VENV_B)/pip.log; exit 1; }
	$(VENV_B)/bin/python -c "import aiorefresh, aiobotocore; assert aiobotocore.__version__.startswith('3.')"
	touch $@

venvs: $(VENV_A)/.stamp $(VENV_B)/.stamp

demo: $(VENV_B)/.stamp
	$(VENV_B)/bin/python -m aiorefresh demo

lint: $(VENV_B)/.stamp
	$(VENV_B)/bin/ruff check src tests benchmarks examples tools
	$(VENV_B)/bin/ruff format --check src tests benchmarks examples tools

typecheck: $(VENV_A)/.stamp $(VENV_B)/.stamp
	$(VENV_B)/bin/mypy --strict src tests/typing examples
	$(VENV_A)/bin/mypy --strict src tests/typing examples

test-a: $(VENV_A)/.stamp
	$(VENV_A)/bin/python -m pytest $(PYTEST_FLAGS)

test-b: $(VENV_B)/.stamp
	$(VENV_B)/bin/python -m pytest $(PYTEST_FLAGS)

docs: $(VENV_B)/.stamp
	NO_MKDOCS_2_WARNING=1 $(VENV_B)/bin/mkdocs build --strict --quiet --site-dir site

test: lint typecheck test-a test-b docs
	@echo "make test: lint, types, docs and both aiobotocore lines passed"

bench: $(VENV_A)/.stamp
	$(VENV_A)/bin/python benchmarks/run_all.py

clean:
	rm -rf $(VENV_A) $(VENV_B) site .mypy_cache .ruff_cache .pytest_cache
