"""Honest work saved by Colab as "Copy of ex01_convolution.ipynb" (the manifest names the file)."""
