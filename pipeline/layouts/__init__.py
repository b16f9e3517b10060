"""Dataset layouts: consolidation of raw samples into HDF5 buckets and scene files as dataset.json declares
(consolidate.py), the one scene-file writer that takes arrays (scene_file.py), and preprocessing (preprocess.py)."""
