"""C3Sarcopenia: skeletal muscle at the C3 level of head-and-neck CT (Naser et al. 2022).

Pure-Python computation shared by the 3D Slicer module and the ``c3sarcopenia`` command.
"""

__version__ = "0.1.0"
