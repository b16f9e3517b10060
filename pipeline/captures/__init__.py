"""Real captures and DeepMind's gqn-datasets as scene-major HDF5: readers that yield scenes as arrays, one writer."""
