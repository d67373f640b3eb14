//! Prints a checkpoint's keys and shapes as vton reads them: `cargo run --example ckpt_keys FILE`.
fn main() -> vton_core::Result<()> {
    let path = std::env::args().nth(1).expect("usage: ckpt_keys FILE");
    let ck = vton_core::weights::Checkpoint::open(&path)?;
    for k in ck.keys() {
        println!("{k} {:?}", ck.shape(k).unwrap_or(&[]));
    }
    Ok(())
}
