//! DCI-VITON noise scheduler and sampler (`diffusionmodel.py` `NoiseScheduler`, `viton_pipeline.py`). Being written.
