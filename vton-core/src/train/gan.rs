//! Adversarial losses and the discriminators' training helpers.
