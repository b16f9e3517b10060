"""Dataset layouts: consolidation of raw samples into HDF5 buckets and scene files, and preprocessing."""
