//! Flags every command shares: the model (`ModelArgs`, ms-swift's `BaseArguments` in kebab
//! case), and the typed `--dtype` and `--device` values, parsed once by clap.

use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use burn::tensor::{DType, Device};
use llava::DeviceMapSpec;

/// `--dtype`: ms-swift's `AUTO` (the checkpoint's `torch_dtype` on a GPU, f32 on the CPU) or
/// one dtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
#[value(rename_all = "lower")]
pub enum DtypeArg {
    /// The checkpoint's dtype on a GPU, f32 on the CPU.
    #[default]
    Auto,
    /// float32.
    #[value(alias = "float32", alias = "fp32")]
    F32,
    /// bfloat16.
    #[value(alias = "bfloat16")]
    Bf16,
    /// float16.
    #[value(alias = "float16", alias = "fp16")]
    F16,
}

impl DtypeArg {
    /// The dtype, `None` for `auto`.
    pub fn dtype(self) -> Option<DType> {
        match self {
            Self::Auto => None,
            Self::F32 => Some(DType::F32),
            Self::Bf16 => Some(DType::BF16),
            Self::F16 => Some(DType::F16),
        }
    }

    /// The name as ms-swift writes it in `sft_args.json` (`AUTO`, `fp32`, `bf16`, `fp16`).
    pub fn swift_name(self) -> &'static str {
        match self {
            Self::Auto => "AUTO",
            Self::F32 => "fp32",
            Self::Bf16 => "bf16",
            Self::F16 => "fp16",
        }
    }
}

impl FromStr for DtypeArg {
    type Err = anyhow::Error;

    /// The names `--dtype` takes, any case (for values read from `sft_args.json`).
    fn from_str(s: &str) -> Result<Self> {
        <Self as clap::ValueEnum>::from_str(s, true)
            .map_err(|_| anyhow::anyhow!("unknown dtype {s:?}: expected AUTO, f32, bf16 or f16"))
    }
}

/// One device name of `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceName {
    /// The CPU backend.
    Cpu,
    /// CUDA device `N`.
    Cuda(usize),
}

impl DeviceName {
    /// The burn device; CUDA needs a binary built with the `cuda` feature.
    pub fn device(self) -> Result<Device> {
        match self {
            Self::Cpu => Ok(Device::flex()),
            Self::Cuda(index) => cuda(index),
        }
    }
}

#[cfg(feature = "cuda")]
fn cuda(index: usize) -> Result<Device> {
    Ok(Device::cuda(index))
}

#[cfg(not(feature = "cuda"))]
fn cuda(_index: usize) -> Result<Device> {
    bail!("this binary was built without CUDA: rebuild with `--features cuda` (docs/cuda.md)")
}

impl FromStr for DeviceName {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            other => match other.strip_prefix("cuda:") {
                Some(index) => index.parse().map(Self::Cuda).map_err(|_| {
                    anyhow::anyhow!("device {other:?}: the index after cuda: must be a number")
                }),
                None => bail!("unknown device {other:?}: expected cpu, cuda or cuda:N"),
            },
        }
    }
}

/// `--device`: one device, or a comma-separated list for `--device-map`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceArg(pub Vec<DeviceName>);

impl Default for DeviceArg {
    fn default() -> Self {
        Self(vec![DeviceName::Cpu])
    }
}

impl FromStr for DeviceArg {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        s.split(',')
            .map(str::parse)
            .collect::<Result<_>>()
            .map(Self)
    }
}

impl std::fmt::Display for DeviceArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .0
            .iter()
            .map(|d| match d {
                DeviceName::Cpu => "cpu".to_string(),
                DeviceName::Cuda(i) => format!("cuda:{i}"),
            })
            .collect();
        f.write_str(&names.join(","))
    }
}

impl DeviceArg {
    /// The first device (where everything goes without a device map).
    pub fn device(&self) -> Result<Device> {
        self.0.first().copied().unwrap_or(DeviceName::Cpu).device()
    }

    /// The devices and, with `device_map` (`auto` or layer ranges such as
    /// `0-39:cuda:0,40-79:cuda:1`), the split.
    pub fn placement(
        &self,
        device_map: Option<&str>,
    ) -> Result<(Vec<Device>, Option<DeviceMapSpec>)> {
        let devices = self
            .0
            .iter()
            .map(|d| d.device())
            .collect::<Result<Vec<_>>>()?;
        let map = match device_map {
            None => None,
            Some("auto") => Some(DeviceMapSpec::Auto(devices.clone())),
            Some(ranges) => Some(DeviceMapSpec::Layers(llava_llm::parse_layer_ranges(
                ranges,
                |d| {
                    d.parse::<DeviceName>()
                        .and_then(DeviceName::device)
                        .map_err(|e| llava_llm::LlmError::Input(e.to_string()))
                },
            )?)),
        };
        if devices.len() > 1 && map.is_none() {
            bail!("several devices given: add --device-map auto (or layer ranges)");
        }
        Ok((devices, map))
    }
}

/// A comma-separated list of sizes (`1,4,16`) given to `flag`; the error names the flag.
pub fn parse_sizes(flag: &str, text: &str) -> Result<Vec<usize>> {
    text.split(',')
        .map(|v| v.trim().parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{flag} {text:?}: expected numbers like 1,4,16"))
}

/// The model flags every command shares (ms-swift's `BaseArguments`).
#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// Model type (`llava1d6-mistral-7b-instruct`, `llava-next-72b`, …; `llava infer
    /// --list-models` lists them). Without it: read from `--ckpt-dir`'s `sft_args.json`, or
    /// inferred from `--model-id-or-path`'s `config.json`; with neither, the embedded model.
    #[arg(long)]
    pub model_type: Option<String>,
    /// A local checkpoint directory or a hub id (default: the model type's hub id).
    #[arg(long)]
    pub model_id_or_path: Option<String>,
    /// Hub revision (branch, tag or commit).
    #[arg(long, alias = "revision")]
    pub model_revision: Option<String>,
    /// A training checkpoint: `sft_args.json` supplies the model type, path, template and
    /// system; a LoRA adapter in it is applied; a full checkpoint is the model itself.
    #[arg(long)]
    pub ckpt_dir: Option<PathBuf>,
    /// Parameter dtype.
    #[arg(long, value_enum, ignore_case = true, default_value_t = DtypeArg::Auto)]
    pub dtype: DtypeArg,
    /// `cpu`, `cuda` or `cuda:N`; with `--device-map`, a comma-separated list
    /// (`cuda:0,cuda:1`).
    #[arg(long, default_value = "cpu")]
    pub device: DeviceArg,
    /// Split the model over devices: `auto` (layers balanced over `--device`'s list; the vision
    /// tower and embeddings on the first) or layer ranges, `0-39:cuda:0,40-79:cuda:1`.
    #[arg(long)]
    pub device_map: Option<String>,
    /// Weight-only quantization of the language model's projections at load: `none`, `int8`
    /// or `int4` (groups of 128 inputs, bf16 scales; the tower, projector and `lm_head` stay).
    #[arg(long, value_enum, default_value_t = QuantArg::None)]
    pub quant_method: QuantArg,
    /// ms-swift's spelling: `8` is `--quant-method int8`, `4` is `int4`, `0` none.
    #[arg(long, value_parser = ["0", "4", "8"])]
    pub quant_bits: Option<String>,
}

/// `--quant-method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QuantArg {
    /// The checkpoint's weights.
    None,
    /// 8-bit weights.
    Int8,
    /// 4-bit weights.
    Int4,
}

impl ModelArgs {
    /// `--quant-method` and `--quant-bits` as one method; both given and different is an error.
    pub fn quant_method(&self) -> anyhow::Result<llava::QuantMethod> {
        let method = match self.quant_method {
            QuantArg::None => llava::QuantMethod::None,
            QuantArg::Int8 => llava::QuantMethod::Int8,
            QuantArg::Int4 => llava::QuantMethod::Int4,
        };
        let Some(bits) = &self.quant_bits else {
            return Ok(method);
        };
        let by_bits = match bits.as_str() {
            "8" => llava::QuantMethod::Int8,
            "4" => llava::QuantMethod::Int4,
            _ => llava::QuantMethod::None,
        };
        if self.quant_method != QuantArg::None && by_bits != method {
            let name = clap::ValueEnum::to_possible_value(&self.quant_method)
                .map_or_else(String::new, |v| v.get_name().to_string());
            bail!("--quant-method {name} and --quant-bits {bits} disagree: give one");
        }
        Ok(by_bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantization_takes_our_method_or_swift_bits_and_refuses_both_disagreeing() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            model: ModelArgs,
        }
        let method = |args: &[&str]| {
            let argv = std::iter::once("llava").chain(args.iter().copied());
            <Cli as clap::Parser>::try_parse_from(argv)
                .unwrap()
                .model
                .quant_method()
        };
        use llava::QuantMethod::{Int4, Int8, None};
        assert_eq!(method(&[]).unwrap(), None);
        assert_eq!(method(&["--quant-bits", "8"]).unwrap(), Int8);
        assert_eq!(method(&["--quant-method", "int4"]).unwrap(), Int4);
        assert_eq!(
            method(&["--quant-method", "int8", "--quant-bits", "8"]).unwrap(),
            Int8
        );
        let e = method(&["--quant-method", "int4", "--quant-bits", "8"]).unwrap_err();
        assert!(
            e.to_string()
                .contains("--quant-method int4 and --quant-bits 8"),
            "{e}"
        );
    }

    #[test]
    fn dtypes_take_swift_and_torch_names() {
        for (text, want) in [
            ("AUTO", DtypeArg::Auto),
            ("fp16", DtypeArg::F16),
            ("bfloat16", DtypeArg::Bf16),
            ("F32", DtypeArg::F32),
        ] {
            assert_eq!(text.parse::<DtypeArg>().unwrap(), want, "{text}");
        }
        let e = "f64".parse::<DtypeArg>().unwrap_err().to_string();
        assert!(e.contains("f64") && e.contains("bf16"), "{e}");
    }

    #[test]
    fn devices_parse_once_with_clear_errors() {
        assert_eq!("cpu".parse::<DeviceArg>().unwrap().0, vec![DeviceName::Cpu]);
        assert_eq!(
            "cuda:0, cuda:3".parse::<DeviceArg>().unwrap().0,
            vec![DeviceName::Cuda(0), DeviceName::Cuda(3)]
        );
        assert_eq!("cuda".parse::<DeviceName>().unwrap(), DeviceName::Cuda(0));
        for bad in ["gpu", "cuda:x", "cuda:"] {
            assert!(bad.parse::<DeviceName>().is_err(), "{bad}");
        }
        assert_eq!(
            "cuda:0,cuda:1".parse::<DeviceArg>().unwrap().to_string(),
            "cuda:0,cuda:1"
        );
    }

    #[test]
    fn several_devices_need_a_map() {
        let two: DeviceArg = "cpu,cpu".parse().unwrap();
        let e = two.placement(None).unwrap_err().to_string();
        assert!(e.contains("--device-map"), "{e}");
        let (devices, map) = two.placement(Some("auto")).unwrap();
        assert_eq!(devices.len(), 2);
        assert!(matches!(map, Some(DeviceMapSpec::Auto(_))));
    }
}

/// clap's parser for counts that must be at least 1 (`--max-new-tokens 0` generates nothing).
pub fn at_least_one(text: &str) -> std::result::Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// clap's parser for a temperature: a finite number ≥ 0 (0 means greedy, as ms-swift treats it).
pub fn temperature(text: &str) -> std::result::Result<f64, String> {
    match text.parse::<f64>() {
        Ok(t) if t.is_finite() && t >= 0.0 => Ok(t),
        Ok(t) => Err(format!(
            "{t} is not a temperature (a finite number >= 0; 0 is greedy)"
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// clap's parser for a duration in seconds: a finite number > 0.
pub fn seconds(text: &str) -> std::result::Result<f64, String> {
    match text.parse::<f64>() {
        Ok(t) if t.is_finite() && t > 0.0 => Ok(t),
        Ok(t) => Err(format!("{t} is not a duration (seconds, > 0)")),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod parser_tests {
    #[test]
    fn counts_and_temperatures() {
        assert_eq!(super::at_least_one("3"), Ok(3));
        assert!(super::at_least_one("0").is_err());
        assert_eq!(super::temperature("0"), Ok(0.0));
        assert!(super::temperature("-1").is_err());
        assert!(super::temperature("NaN").is_err());
        assert!(super::temperature("inf").is_err());
        assert_eq!(super::seconds("0.5"), Ok(0.5));
        assert!(super::seconds("0").is_err());
    }
}
