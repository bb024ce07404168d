//! `--device` and `--dtype` flags.

use anyhow::{Context, Result, bail};
use burn::tensor::{DType, Device};
use llava::DeviceMapSpec;

/// `cpu`, `cuda` or `cuda:N` → a burn device.
pub fn parse_device(spec: &str) -> Result<Device> {
    match spec {
        "cpu" => Ok(Device::flex()),
        s if s == "cuda" || s.starts_with("cuda:") => cuda(s.strip_prefix("cuda:").unwrap_or("0")),
        other => bail!("unknown --device {other:?}: expected cpu, cuda or cuda:N"),
    }
}

#[cfg(feature = "cuda")]
fn cuda(index: &str) -> Result<Device> {
    let index: usize = index
        .parse()
        .map_err(|_| anyhow::anyhow!("--device cuda:{index}: the index must be a number"))?;
    Ok(Device::cuda(index))
}

#[cfg(not(feature = "cuda"))]
fn cuda(_index: &str) -> Result<Device> {
    bail!("this binary was built without CUDA: rebuild with `--features cuda` (docs/cuda.md)")
}

/// `f32`, `bf16` or `f16`.
pub fn parse_dtype(spec: &str) -> Result<DType> {
    match spec {
        "f32" | "float32" | "fp32" => Ok(DType::F32),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        "f16" | "float16" | "fp16" => Ok(DType::F16),
        other => bail!("unknown --dtype {other:?}: expected f32, bf16 or f16"),
    }
}

/// `--device` (one device, or a comma-separated list) and `--device-map` (`auto` or layer
/// A comma-separated list of sizes (`1,4,16`) given to `flag`; the error names the flag.
pub fn parse_sizes(flag: &str, text: &str) -> Result<Vec<usize>> {
    text.split(',')
        .map(|v| v.trim().parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{flag} {text:?}: expected numbers like 1,4,16"))
}

/// ranges such as `0-39:cuda:0,40-79:cuda:1`) → the devices and the split, if any.
pub fn parse_placement(
    device: &str,
    device_map: Option<&str>,
) -> Result<(Vec<Device>, Option<DeviceMapSpec>)> {
    let devices = device
        .split(',')
        .map(|d| parse_device(d.trim()))
        .collect::<Result<Vec<_>>>()?;
    let map = match device_map {
        None => None,
        Some("auto") => Some(DeviceMapSpec::Auto(devices.clone())),
        Some(ranges) => Some(DeviceMapSpec::Layers(llava_llm::parse_layer_ranges(
            ranges,
            |d| parse_device(d).map_err(|e| llava_llm::LlmError::Input(e.to_string())),
        )?)),
    };
    if devices.len() > 1 && map.is_none() {
        bail!("several devices given: add --device-map auto (or layer ranges)");
    }
    Ok((devices, map))
}
