"""Readers of other people's files, each into tensors under this project's names and the
architecture they describe, without running anything the file holds: NVIDIA's network pickles
(and their TensorFlow-era kind), rosinality's StyleGAN2 checkpoints, pytorch_GAN_zoo's PGAN
checkpoints, and a user's checkpoint of any module (:func:`~panda_lightning.generators.formats.weights.load_weights`).
Each can be read and tested without the network it fills."""
