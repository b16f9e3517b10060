"""File formats and codecs outside Blender: the canonical view EXR, PNG, the depth code, atomic HDF5 output."""
