//! Training data: VITON-HD / HR-VITON and CP-VTON+ dataset layouts, batching off the training thread.
