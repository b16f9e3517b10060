"""Reading raw samples back: the sidecar reader, dataset validation and contact sheets."""
