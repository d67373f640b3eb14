//! pytorch-fid's InceptionV3. Being written.
