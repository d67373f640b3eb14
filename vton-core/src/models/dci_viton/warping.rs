//! DCI-VITON warping network (`warpingnetwork.py` `WarpingProcess`). Being written.
