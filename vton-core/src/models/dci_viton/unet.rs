//! DCI-VITON diffusion U-Net (`diffusionmodel.py` `UNet`). Being written.
