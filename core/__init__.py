"""Contracts every layer shares, with numpy and the standard library only: camera geometry, the asset index
model, dataset and sample conventions, atomic publishing. render/, pipeline/ and train/ may all import it."""
