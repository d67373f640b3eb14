//! Training checkpoints: state dicts as `.pth` and safetensors, optimiser state, atomic writes.
