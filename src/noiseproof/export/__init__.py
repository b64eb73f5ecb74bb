"""Export a trained model's target conductances for programming a real crossbar chip.

layout: which tensors become which crossbar array (conv unrolled, bias rows); tiles: the
differential-pair conductances cut into fixed-size tiles; files: npz, CSV, histograms and the
JSON manifest that says how to map them back to weights.
"""
