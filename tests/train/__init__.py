"""Tests of the trainer package `train/`."""
