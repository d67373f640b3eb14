//! DCI-VITON weights-folder discovery (`vton_core::models::dci_viton::files`): the rules
//! the CLI and the C API share, and the error named for each missing or ambiguous part.

use std::path::Path;

use vton_core::models::dci_viton::files::{
    find_checkpoints, resolve_checkpoints, DciVitonFileOverrides, UNET_ARG, VAE_ARG, WARPING_ARG,
};
use vton_core::VtonError;

fn touch(p: &Path) {
    std::fs::write(p, b"x").unwrap();
}

#[test]
fn finds_the_three_parts_and_names_each_failure() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let err = find_checkpoints(dir).unwrap_err();
    assert!(
        matches!(&err, VtonError::InvalidArgument { name, .. } if name == WARPING_ARG),
        "{err}"
    );
    touch(&dir.join("DCI_Warping_final.pth"));
    touch(&dir.join("notes.txt"));
    let err = find_checkpoints(dir).unwrap_err();
    assert!(
        matches!(&err, VtonError::InvalidArgument { name, .. } if name == UNET_ARG),
        "{err}"
    );
    touch(&dir.join("unet.safetensors"));
    let err = find_checkpoints(dir).unwrap_err();
    assert!(
        matches!(&err, VtonError::InvalidArgument { name, .. } if name == VAE_ARG),
        "{err}"
    );
    std::fs::create_dir(dir.join("vae")).unwrap();
    let f = find_checkpoints(dir).unwrap();
    assert_eq!(f.warping, dir.join("DCI_Warping_final.pth"));
    assert_eq!(f.unet, dir.join("unet.safetensors"));
    assert_eq!(f.vae, dir.join("vae"));

    touch(&dir.join("other.ckpt"));
    let err = find_checkpoints(dir).unwrap_err();
    assert!(
        matches!(&err, VtonError::InvalidArgument { name, message } if name == UNET_ARG
            && message.contains("several")),
        "{err}"
    );
    // An explicit U-Net resolves the ambiguity.
    let o = DciVitonFileOverrides {
        unet: Some(dir.join("other.ckpt")),
        ..Default::default()
    };
    assert_eq!(
        resolve_checkpoints(Some(dir), &o).unwrap().unet,
        dir.join("other.ckpt")
    );
    touch(&dir.join("warping2.pt"));
    let err = resolve_checkpoints(Some(dir), &o).unwrap_err();
    assert!(
        matches!(&err, VtonError::InvalidArgument { name, message } if name == WARPING_ARG
            && message.contains("several")),
        "{err}"
    );

    let err = find_checkpoints(&dir.join("absent")).unwrap_err();
    assert!(matches!(err, VtonError::FileNotFound { .. }), "{err}");
    let err = resolve_checkpoints(None, &DciVitonFileOverrides::default()).unwrap_err();
    assert!(
        matches!(&err, VtonError::InvalidArgument { name, .. } if name == WARPING_ARG),
        "{err}"
    );
}
