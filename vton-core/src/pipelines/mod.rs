pub mod cpvton;
pub mod dci_viton;
pub mod diffusion;
pub mod geometric;
pub mod hrviton;
pub mod landmarks;
pub mod parsing;
pub mod preprocess;
