//! Warping: thin-plate splines, grid sampling and flow warping.

pub mod flow;
pub mod grid;
pub mod tps;

pub use flow::{flow_to_grid, warp_by_flow};
pub use grid::{grid_sample, identity_grid, GridSampleOptions, PaddingMode, SampleMode};
pub use tps::{ThinPlateSpline, TpsGridGen};
