"""Reading C3 muscle by eye: region sheets, readers' picks, consensus labels.

A reader labels the C3 slice by listing numbered regions (superpixels of the -29..150 HU
pixels inside the body) per muscle group; picks of several blind readers are merged by
per-region majority into label masks that ``train --stage muscle`` takes.
"""
