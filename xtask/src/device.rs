//! `--device` and `--dtype` of the developer commands, parsed by the `llava` binary's types
//! (`llava_cli::args`), so both take the same names.

use anyhow::{Context, Result};
use burn::tensor::{DType, Device};
use llava::DeviceMapSpec;
pub use llava_cli::args::parse_sizes;
use llava_cli::args::{DeviceArg, DeviceName, DtypeArg};

/// `cpu`, `cuda` or `cuda:N` → a burn device.
pub fn parse_device(spec: &str) -> Result<Device> {
    spec.parse::<DeviceName>()?.device()
}

/// `f32`, `bf16` or `f16`.
pub fn parse_dtype(spec: &str) -> Result<DType> {
    spec.parse::<DtypeArg>()?
        .dtype()
        .with_context(|| format!("--dtype {spec}: name one (f32, bf16 or f16)"))
}

/// `--device` (one device, or a comma-separated list) and `--device-map` → the devices and the
/// split, if any.
pub fn parse_placement(
    device: &str,
    device_map: Option<&str>,
) -> Result<(Vec<Device>, Option<DeviceMapSpec>)> {
    device.parse::<DeviceArg>()?.placement(device_map)
}
