use vton_core::pipelines::geometric::evaluate_quality;
use vton_core::prelude::*;
fn main() -> vton_core::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let (p, g) = (&a[1], &a[2]);
    let gm = if a.len() > 3 {
        Some(format!("examples/garment/{g}_mask.png"))
    } else {
        None
    };
    let inputs = TryOnInputs::from_paths(
        format!("examples/person/{p}.png"),
        format!("examples/person/{p}_keypoints.json"),
        Some(format!("examples/person/{p}_mask.png")),
        None::<&str>,
        format!("examples/garment/{g}.png"),
        gm,
    )?;
    let out = GeometricTryOn::default().run(&inputs, &default_device())?;
    println!("{:?}", out.garment_landmarks);
    println!("{:?}", out.body_targets);
    println!(
        "{:?}",
        evaluate_quality(&out, &inputs.pose, inputs.person_mask.as_ref().unwrap())
    );
    out.garment_mask.save_png("out/dbg_gmask.png")?;
    out.image.save_png("out/dbg.png")?;
    out.agnostic_image.save_png("out/dbg_agn.png")?;
    Ok(())
}
