"""Networks in plain PyTorch, written here: StyleGAN2's and StyleGAN3's synthesis and mapping
networks and their FIR resampling, ProGAN's layers, DCGAN blocks. They read no file;
:mod:`~panda_lightning.generators.formats` reads the files that fill them."""
