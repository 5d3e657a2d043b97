"""Equality with others' code: the generators read from NVIDIA's, rosinality's and
pytorch_GAN_zoo's files against those codes' own outputs."""
