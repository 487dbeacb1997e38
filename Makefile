# The two commands of README.md. Each creates (or reuses) .venv with the CPU build of torch.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/c3sarcopenia demo --out demo_output

# The Qt panel tests get their own process: PySide6's UI loader can crash in a process that
# loaded torch and VTK before it, depending on test order.
PANEL_TESTS := C3Sarcopenia/Testing/test_panel.py

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen MPLBACKEND=Agg $(PY) -m pytest -q --ignore=$(PANEL_TESTS)
	QT_QPA_PLATFORM=offscreen MPLBACKEND=Agg $(PY) -m pytest -q $(PANEL_TESTS)

# The speed benchmark (README "Speed"); the OpenKBP CT is timed too when it is there.
OPENKBP_CT := ../shared/data/openkbp/train-pats_pt_133_ct.nii.gz

bench: $(STAMP)
	$(VENV)/bin/c3sarcopenia bench --out bench_output --batch-workers 1,2 $(if $(wildcard $(OPENKBP_CT)),--real-ct $(OPENKBP_CT))
