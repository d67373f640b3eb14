pub mod diffusion;
pub mod geometric;
pub mod landmarks;
pub mod hrviton;
pub mod cpvton;
