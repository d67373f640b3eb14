//! HR-VITON training (`train_condition.py`): the condition generator and its discriminator.
