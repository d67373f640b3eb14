//! LPIPS (lpips 0.1.4, version 0.1). Being written.
