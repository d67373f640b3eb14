pub mod geometric;
pub mod landmarks;
