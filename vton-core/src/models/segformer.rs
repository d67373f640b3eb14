//! SegFormer semantic segmentation (transformers `SegformerForSemanticSegmentation`). Being written.
