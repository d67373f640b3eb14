use vton_core::io::{read_image, read_mask};
use vton_core::masks::{estimate_garment_mask, GarmentMaskOptions};
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let k: f32 = a.get(1).map(|s| s.parse().unwrap()).unwrap_or(4.0);
    let r: usize = a.get(2).map(|s| s.parse().unwrap()).unwrap_or(3);
    let g: f32 = a.get(3).map(|s| s.parse().unwrap()).unwrap_or(0.03);
    for n in ["jacket1", "jacket2", "shirt1", "shirt2", "shirt3", "shirt4"] {
        let img = read_image(format!("examples/garment/openvto_{n}_front.png")).unwrap();
        let gt = read_mask(format!("examples/garment/openvto_{n}_front_mask.png")).unwrap();
        let m = estimate_garment_mask(
            &img,
            &GarmentMaskOptions {
                mad_factor: k,
                opening_radius: r,
                gradient_threshold: g,
                ..Default::default()
            },
        )
        .unwrap();
        m.save_png(format!("out/gm_{n}.png")).unwrap();
        print!("{n} {:.3}  ", m.iou(&gt));
    }
    println!();
}
