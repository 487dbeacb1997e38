"""The shipped sample neck CT: a synthetic phantom unlike the training ones, for demos and
teaching. Light on imports, so the Slicer module can register it at start-up."""

from .shipped import sample_data_dir

SAMPLE_CT = sample_data_dir() / "c3sarcopenia_sample_ct.nii.gz"
SAMPLE_SEED = 90210
# The sample phantom's clinical fields, as a user would type them.
SAMPLE_CLINICAL = {"age": 55, "sex": "M", "height_cm": 180.4, "weight_kg": 80.2}
SAMPLE_TRUE_C3_SLICE_K = 30  # the phantom's own label, for checking the demo by eye
