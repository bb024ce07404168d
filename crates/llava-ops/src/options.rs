//! [`KernelOptions`]: every runtime switch of the kernel route, typed, in one place.
//!
//! This module is the only reader of `LLAVA_*` environment variables. Each variable maps to one
//! field; an unknown variable, kernel name or value is an [`OptionsError`] that lists what is
//! valid, raised where the options are installed ([`install`], called by
//! `llava::get_model_tokenizer` and the `llava` binary before any work), not silently ignored.
//! docs/knobs.md is the table of every switch, its default and the measurement behind it.
//!
//! Code sets them through [`install`] (`ModelKwargs::kernel_options` in the facade); otherwise
//! the first kernel to ask reads the environment once ([`current`]).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// The kernels `LLAVA_OPS_OFF` can turn off one by one (each is on by default on CUDA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kernel {
    /// Rotate-half RoPE in one kernel.
    Rope,
    /// The SwiGLU gate `silu(gate)·up`.
    SiluMul,
    /// GELU / QuickGELU in one kernel.
    Activation,
    /// A biased product's bias added in f32 and rounded once.
    BiasRound,
    /// RMSNorm in one kernel.
    RmsNorm,
    /// The residual add folded into the next RMSNorm.
    AddRmsNorm,
    /// LayerNorm in one kernel.
    LayerNorm,
    /// Scale, bias, softmax and cast of attention scores in one pass.
    AttentionProbs,
    /// The probabilities kernel's register-held variant (a row kept in registers).
    HeldProbs,
    /// The GEMV for decode rows.
    Gemv,
    /// q/k/v projections of decode rows in one GEMV launch.
    GemvQkv,
    /// `silu(x·gateᵀ)·(x·upᵀ)` of decode rows in one GEMV launch.
    GemvSilu,
    /// Flash-decoding for one query per sequence.
    DecodeAttention,
    /// The flash prompt kernel for the decoder's plain causal prompts.
    FlashPrefill,
    /// The flash kernel for the vision towers' unmasked attention.
    FlashVision,
    /// A layer's q/k/v or gate/up prompt products as one cuBLAS group.
    BlasGroup,
    /// cuBLAS queued on cubecl's own stream (otherwise a host round trip per group).
    BlasStream,
}

impl Kernel {
    /// Every kernel, in the order docs/knobs.md lists them.
    pub const ALL: [Kernel; 17] = [
        Kernel::Rope,
        Kernel::SiluMul,
        Kernel::Activation,
        Kernel::BiasRound,
        Kernel::RmsNorm,
        Kernel::AddRmsNorm,
        Kernel::LayerNorm,
        Kernel::AttentionProbs,
        Kernel::HeldProbs,
        Kernel::Gemv,
        Kernel::GemvQkv,
        Kernel::GemvSilu,
        Kernel::DecodeAttention,
        Kernel::FlashPrefill,
        Kernel::FlashVision,
        Kernel::BlasGroup,
        Kernel::BlasStream,
    ];

    /// The name `LLAVA_OPS_OFF` takes.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Rope => "rope",
            Kernel::SiluMul => "silu_mul",
            Kernel::Activation => "activation",
            Kernel::BiasRound => "bias_round",
            Kernel::RmsNorm => "rms_norm",
            Kernel::AddRmsNorm => "add_rms_norm",
            Kernel::LayerNorm => "layer_norm",
            Kernel::AttentionProbs => "attention_probs",
            Kernel::HeldProbs => "held_probs",
            Kernel::Gemv => "gemv",
            Kernel::GemvQkv => "gemv_qkv",
            Kernel::GemvSilu => "gemv_silu",
            Kernel::DecodeAttention => "decode_attention",
            Kernel::FlashPrefill => "flash_prefill",
            Kernel::FlashVision => "flash_vision",
            Kernel::BlasGroup => "blas_group",
            Kernel::BlasStream => "blas_stream",
        }
    }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kernel {
    type Err = OptionsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kernel::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| OptionsError::value("LLAVA_OPS_OFF", s, names(Kernel::ALL)))
    }
}

/// Where the ops run (`LLAVA_OPS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Route {
    /// Our kernels, cuBLAS and cubek on CUDA; burn's ops elsewhere (`kernels`).
    #[default]
    Kernels,
    /// burn's ops everywhere (`burn`): the reference path, for A/B runs.
    Burn,
}

/// Per-op statistics (`LLAVA_OPS_STATS`), printed by `cuda::report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatsMode {
    /// None (unset or `off`).
    #[default]
    Off,
    /// Calls and launch time of each op class (`launch`, or `1`).
    Launch,
    /// Each op waited for after its launch, so its figure includes its device time (`sync`).
    Sync,
}

/// A cubek matmul strategy by name (one of [`MATMUL_STRATEGIES`]), as the sweep times them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MatmulStrategy(&'static str);

impl MatmulStrategy {
    /// The strategy's name in [`MATMUL_STRATEGIES`].
    pub fn name(self) -> &'static str {
        self.0
    }

    /// The strategy called `name`, if it is one of [`MATMUL_STRATEGIES`].
    pub fn named(name: &str) -> Option<Self> {
        MATMUL_STRATEGIES
            .iter()
            .find(|s| **s == name)
            .map(|s| Self(s))
    }

    fn list(var: &str, value: &str) -> Result<Vec<Self>, OptionsError> {
        value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|name| {
                Self::named(name).ok_or_else(|| {
                    OptionsError::value(var, name, MATMUL_STRATEGIES.iter().copied())
                })
            })
            .collect()
    }

    fn defaults(names: &[&'static str]) -> Vec<Self> {
        names.iter().map(|n| Self(n)).collect()
    }
}

/// Every matmul strategy the sweep can time, by name (cubek's routines as burn's autotune lists
/// them).
pub const MATMUL_STRATEGIES: &[&str] = &[
    "auto",
    "naive",
    "vecmat",
    "double_vecmat",
    "gemv_perpendicular",
    "gemm",
    "gemm_no_stage",
    "unit_max",
    "unit_min",
    "double_unit_max",
    "double_unit_min",
    "cyclic_cmma",
    "cyclic_mma",
    "cyclic_cmma_rows",
    "cyclic_mma_rows",
    "ordered_cmma4",
    "ordered_mma4",
    "ordered_cmma8",
    "ordered_mma8",
    "double_cyclic_cmma",
    "double_cyclic_mma",
    "specialized_double_cmma",
    "specialized_double_mma",
    "specialized_cyclic_cmma",
    "specialized_cyclic_mma",
    "tma_cmma",
    "tma_mma",
    "tma_cmma_rows",
    "tma_mma_rows",
    "specialized_tma_cmma",
    "specialized_tma_mma",
];

/// How batched half-precision products run (`LLAVA_MATMUL_BATCHED`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchedMatmul {
    /// One 2-D product per batch through the large plan's list (`split`, the default).
    Split,
    /// A batched kernel: the first of these strategies that takes the problem.
    Kernels(Vec<MatmulStrategy>),
}

/// The strategy list of each matmul plan (`crate::choice::MatmulPlan`): the first strategy that
/// accepts a problem runs, and burn's default closes every list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatmulLists {
    /// At most `choice::SMALL_M` rows (`LLAVA_MATMUL_SMALL`).
    pub small: Vec<MatmulStrategy>,
    /// Few rows, wide output (`LLAVA_MATMUL_SMALL_WIDE`).
    pub small_wide: Vec<MatmulStrategy>,
    /// Prompt-sized products (`LLAVA_MATMUL_LARGE`).
    pub large: Vec<MatmulStrategy>,
    /// Batched products (`LLAVA_MATMUL_BATCHED`).
    pub batched: BatchedMatmul,
    /// Everything else (`LLAVA_MATMUL_DEFAULT`).
    pub default: Vec<MatmulStrategy>,
}

impl Default for MatmulLists {
    fn default() -> Self {
        Self {
            small: MatmulStrategy::defaults(&["gemm_no_stage", "gemm"]),
            small_wide: MatmulStrategy::defaults(&["cyclic_mma", "gemm"]),
            large: MatmulStrategy::defaults(&["specialized_tma_mma", "double_cyclic_mma"]),
            batched: BatchedMatmul::Split,
            default: MatmulStrategy::defaults(&["auto"]),
        }
    }
}

/// Every runtime switch of the kernel route. `Default` is what ships; docs/knobs.md says what
/// each one trades and the measurement behind its default.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelOptions {
    /// `LLAVA_OPS`: our kernels or burn's ops.
    pub route: Route,
    /// `LLAVA_OPS_OFF`: kernels turned off one by one (a comma list of [`Kernel`] names).
    pub off: BTreeSet<Kernel>,
    /// `LLAVA_OPS_STATS`: per-op statistics.
    pub stats: StatsMode,
    /// `LLAVA_GRAPH`: decode steps recorded once as a CUDA graph and replayed (`1`/`0`).
    pub graph_replay: bool,
    /// `LLAVA_GRAPH_SPLIT`: a model split over devices records one graph a device (`1`/`0`;
    /// off until it has run on several GPUs).
    pub graph_split: bool,
    /// `LLAVA_CUBLAS`: prompt products through cuBLAS where it loads (`1`/`0`).
    pub cublas: bool,
    /// `LLAVA_CUBLAS_MIN_MFLOP`: products (summed over a group) under this many million
    /// operations stay on cubek's kernels.
    pub cublas_min_mflop: f64,
    /// `LLAVA_CUBLAS_CHECK`: every cuBLAS product compared with cubek's (`1`/`0`; slow).
    pub cublas_check: bool,
    /// `LLAVA_MATMUL_*`: cubek's strategy list per plan.
    pub matmul: MatmulLists,
    /// `LLAVA_ATTN_SCORE_MIB`: the most f32 attention scores one chunk of queries of the
    /// reference attention holds, in MiB.
    pub attention_score_mib: usize,
}

impl Default for KernelOptions {
    fn default() -> Self {
        Self {
            route: Route::Kernels,
            off: BTreeSet::new(),
            stats: StatsMode::Off,
            graph_replay: true,
            graph_split: false,
            cublas: true,
            cublas_min_mflop: 30_000.0,
            cublas_check: false,
            matmul: MatmulLists::default(),
            attention_score_mib: 256,
        }
    }
}

/// Every variable [`KernelOptions::from_vars`] reads, with what it takes.
pub const VARIABLES: &[(&str, &str)] = &[
    ("LLAVA_OPS", "kernels | burn"),
    ("LLAVA_OPS_OFF", "a comma list of kernel names"),
    ("LLAVA_OPS_STATS", "off | launch | 1 | sync"),
    ("LLAVA_GRAPH", "1 | 0"),
    ("LLAVA_GRAPH_SPLIT", "1 | 0"),
    ("LLAVA_CUBLAS", "1 | 0"),
    ("LLAVA_CUBLAS_MIN_MFLOP", "a number ≥ 0"),
    ("LLAVA_CUBLAS_CHECK", "1 | 0"),
    ("LLAVA_MATMUL_SMALL", "a comma list of matmul strategies"),
    (
        "LLAVA_MATMUL_SMALL_WIDE",
        "a comma list of matmul strategies",
    ),
    ("LLAVA_MATMUL_LARGE", "a comma list of matmul strategies"),
    (
        "LLAVA_MATMUL_BATCHED",
        "split, or a comma list of matmul strategies",
    ),
    ("LLAVA_MATMUL_DEFAULT", "a comma list of matmul strategies"),
    ("LLAVA_ATTN_SCORE_MIB", "a whole number ≥ 1"),
];

/// A switch that is not known or not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    /// An `LLAVA_*` variable no switch reads (one removed, or misspelt).
    #[error("unknown kernel option {name}; the options are: {valid}")]
    UnknownVariable {
        /// The variable.
        name: String,
        /// Every variable read, with what it takes.
        valid: String,
    },
    /// A value the variable does not take.
    #[error("{name}={value:?} is not valid; valid values: {valid}")]
    InvalidValue {
        /// The variable.
        name: String,
        /// The value (or the one item of a list) that is wrong.
        value: String,
        /// What it takes.
        valid: String,
    },
    /// [`install`] after the options were already in use with other values.
    #[error(
        "kernel options are already in use with other values ({current}); set them once, before the first model is loaded"
    )]
    AlreadySet {
        /// The options in use.
        current: String,
    },
}

impl OptionsError {
    fn value(name: &str, value: &str, valid: impl IntoIterator<Item = impl fmt::Display>) -> Self {
        Self::InvalidValue {
            name: name.into(),
            value: value.into(),
            valid: valid
                .into_iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

fn names(kernels: impl IntoIterator<Item = Kernel>) -> impl Iterator<Item = &'static str> {
    kernels.into_iter().map(Kernel::name)
}

fn flag(name: &str, value: &str) -> Result<bool, OptionsError> {
    match value.trim() {
        "1" | "on" | "true" => Ok(true),
        "0" | "off" | "false" => Ok(false),
        other => Err(OptionsError::value(name, other, ["1", "0"])),
    }
}

impl KernelOptions {
    /// The options the process environment sets (`LLAVA_*`), the rest at their defaults.
    pub fn from_env() -> Result<Self, OptionsError> {
        Self::from_vars(std::env::vars_os().filter_map(|(k, v)| {
            let k = k.into_string().ok()?;
            k.starts_with("LLAVA_")
                .then(|| (k, v.to_string_lossy().into_owned()))
        }))
    }

    /// The options `vars` (name, value) set, the rest at their defaults. Every name must start
    /// with `LLAVA_` and be one of [`VARIABLES`]; an empty value counts as unset.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (impl AsRef<str>, impl AsRef<str>)>,
    ) -> Result<Self, OptionsError> {
        let mut o = Self::default();
        for (name, value) in vars {
            let (name, value) = (name.as_ref(), value.as_ref().trim());
            if value.is_empty() {
                continue;
            }
            match name {
                "LLAVA_OPS" => {
                    o.route = match value {
                        "kernels" => Route::Kernels,
                        "burn" => Route::Burn,
                        _ => return Err(OptionsError::value(name, value, ["kernels", "burn"])),
                    }
                }
                "LLAVA_OPS_OFF" => {
                    o.off = value
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::parse)
                        .collect::<Result<_, _>>()?;
                }
                "LLAVA_OPS_STATS" => {
                    o.stats = match value {
                        "off" | "0" => StatsMode::Off,
                        "launch" | "1" => StatsMode::Launch,
                        "sync" => StatsMode::Sync,
                        _ => {
                            return Err(OptionsError::value(
                                name,
                                value,
                                ["off", "launch", "1", "sync"],
                            ));
                        }
                    }
                }
                "LLAVA_GRAPH" => o.graph_replay = flag(name, value)?,
                "LLAVA_GRAPH_SPLIT" => o.graph_split = flag(name, value)?,
                "LLAVA_CUBLAS" => o.cublas = flag(name, value)?,
                "LLAVA_CUBLAS_CHECK" => o.cublas_check = flag(name, value)?,
                "LLAVA_CUBLAS_MIN_MFLOP" => {
                    o.cublas_min_mflop = value
                        .parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite() && *v >= 0.0)
                        .ok_or_else(|| OptionsError::value(name, value, ["a number ≥ 0"]))?;
                }
                "LLAVA_ATTN_SCORE_MIB" => {
                    o.attention_score_mib = value
                        .parse::<usize>()
                        .ok()
                        .filter(|v| *v > 0)
                        .ok_or_else(|| OptionsError::value(name, value, ["a whole number ≥ 1"]))?;
                }
                "LLAVA_MATMUL_SMALL" => o.matmul.small = MatmulStrategy::list(name, value)?,
                "LLAVA_MATMUL_SMALL_WIDE" => {
                    o.matmul.small_wide = MatmulStrategy::list(name, value)?
                }
                "LLAVA_MATMUL_LARGE" => o.matmul.large = MatmulStrategy::list(name, value)?,
                "LLAVA_MATMUL_DEFAULT" => o.matmul.default = MatmulStrategy::list(name, value)?,
                "LLAVA_MATMUL_BATCHED" => {
                    o.matmul.batched = if value == "split" {
                        BatchedMatmul::Split
                    } else {
                        BatchedMatmul::Kernels(MatmulStrategy::list(name, value)?)
                    }
                }
                other => {
                    return Err(OptionsError::UnknownVariable {
                        name: other.into(),
                        valid: VARIABLES
                            .iter()
                            .map(|(n, takes)| format!("{n} ({takes})"))
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
            }
        }
        Ok(o)
    }

    /// Whether `kernel` runs where it applies (not turned off, and the route on).
    pub fn kernel_on(&self, kernel: Kernel) -> bool {
        self.route == Route::Kernels && !self.off.contains(&kernel)
    }

    /// A one-line summary of what differs from the defaults (`defaults` when nothing does).
    pub fn summary(&self) -> String {
        let d = Self::default();
        let mut parts = Vec::new();
        if self.route != d.route {
            parts.push(format!("route {:?}", self.route));
        }
        if !self.off.is_empty() {
            let off: Vec<_> = self.off.iter().map(|k| k.name()).collect();
            parts.push(format!("off [{}]", off.join(",")));
        }
        if self.stats != d.stats {
            parts.push(format!("stats {:?}", self.stats));
        }
        if self.graph_replay != d.graph_replay {
            parts.push(format!("graph_replay {}", self.graph_replay));
        }
        if self.graph_split != d.graph_split {
            parts.push(format!("graph_split {}", self.graph_split));
        }
        if self.cublas != d.cublas {
            parts.push(format!("cublas {}", self.cublas));
        }
        if self.cublas_min_mflop != d.cublas_min_mflop {
            parts.push(format!("cublas_min_mflop {}", self.cublas_min_mflop));
        }
        if self.cublas_check != d.cublas_check {
            parts.push(format!("cublas_check {}", self.cublas_check));
        }
        if self.matmul != d.matmul {
            parts.push(format!("matmul {:?}", self.matmul));
        }
        if self.attention_score_mib != d.attention_score_mib {
            parts.push(format!("attention_score_mib {}", self.attention_score_mib));
        }
        if parts.is_empty() {
            "defaults".into()
        } else {
            parts.join(", ")
        }
    }
}

static OPTIONS: OnceLock<KernelOptions> = OnceLock::new();

/// Puts `options` in force for the process (`None`: the environment's), logs the effective set
/// once, and returns them. Installing the same values again is fine; other values once the
/// options are in use are [`OptionsError::AlreadySet`]. An invalid environment is an error here.
pub fn install(options: Option<KernelOptions>) -> Result<&'static KernelOptions, OptionsError> {
    let wanted = match options {
        Some(o) => o,
        None => match OPTIONS.get() {
            Some(current) => return Ok(current),
            None => KernelOptions::from_env()?,
        },
    };
    let mut fresh = false;
    let current = OPTIONS.get_or_init(|| {
        fresh = true;
        wanted.clone()
    });
    if fresh {
        tracing::info!("kernel options: {}", current.summary());
    }
    if *current != wanted {
        return Err(OptionsError::AlreadySet {
            current: current.summary(),
        });
    }
    Ok(current)
}

/// The options in force: those [`install`]ed, or else the environment's, read once. An invalid
/// environment that nothing installed first is logged as an error and the defaults are used
/// (the kernels never fail on it; the entry points reject it through [`install`]).
pub fn current() -> &'static KernelOptions {
    OPTIONS.get_or_init(|| {
        let options = KernelOptions::from_env().unwrap_or_else(|e| {
            tracing::error!("{e}; the default kernel options are used");
            KernelOptions::default()
        });
        tracing::info!("kernel options: {}", options.summary());
        options
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_variables_give_the_defaults() {
        let none: [(&str, &str); 0] = [];
        assert_eq!(
            KernelOptions::from_vars(none).unwrap(),
            KernelOptions::default()
        );
        assert_eq!(KernelOptions::default().summary(), "defaults");
    }

    #[test]
    fn each_variable_sets_its_field() {
        let o = KernelOptions::from_vars([
            ("LLAVA_OPS_OFF", "gemv, flash_prefill"),
            ("LLAVA_OPS_STATS", "sync"),
            ("LLAVA_GRAPH", "0"),
            ("LLAVA_GRAPH_SPLIT", "1"),
            ("LLAVA_CUBLAS_MIN_MFLOP", "5000"),
            ("LLAVA_MATMUL_LARGE", "tma_mma"),
            ("LLAVA_MATMUL_BATCHED", "auto,gemm"),
            ("LLAVA_ATTN_SCORE_MIB", "64"),
        ])
        .unwrap();
        assert_eq!(o.off, BTreeSet::from([Kernel::Gemv, Kernel::FlashPrefill]));
        assert!(!o.kernel_on(Kernel::Gemv) && o.kernel_on(Kernel::Rope));
        assert_eq!(o.stats, StatsMode::Sync);
        assert!(!o.graph_replay && o.graph_split);
        assert_eq!(o.cublas_min_mflop, 5000.0);
        assert_eq!(
            o.matmul.large,
            vec![MatmulStrategy::named("tma_mma").unwrap()]
        );
        assert_eq!(
            o.matmul.batched,
            BatchedMatmul::Kernels(vec![
                MatmulStrategy::named("auto").unwrap(),
                MatmulStrategy::named("gemm").unwrap()
            ])
        );
        assert_eq!(o.attention_score_mib, 64);
        let burn = KernelOptions::from_vars([("LLAVA_OPS", "burn")]).unwrap();
        assert!(!burn.kernel_on(Kernel::Rope));
    }

    #[test]
    fn an_unknown_kernel_lists_the_valid_names() {
        let e = KernelOptions::from_vars([("LLAVA_OPS_OFF", "gemv,nonsense")]).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("\"nonsense\""), "{text}");
        for k in Kernel::ALL {
            assert!(text.contains(k.name()), "{text} lacks {k}");
        }
    }

    #[test]
    fn removed_and_misspelt_variables_are_rejected() {
        for name in [
            "LLAVA_OPS_ON",
            "LLAVA_FLASH_BK",
            "LLAVA_GRAPH_WARMUP",
            "LLAVA_CUBLASS",
        ] {
            let e = KernelOptions::from_vars([(name, "1")]).unwrap_err();
            assert!(
                matches!(&e, OptionsError::UnknownVariable { name: n, valid } if n == name && valid.contains("LLAVA_OPS_OFF")),
                "{e}"
            );
        }
    }

    #[test]
    fn bad_values_name_the_variable_and_what_it_takes() {
        for (name, value) in [
            ("LLAVA_OPS", "fast"),
            ("LLAVA_GRAPH", "yes"),
            ("LLAVA_CUBLAS_MIN_MFLOP", "-1"),
            ("LLAVA_ATTN_SCORE_MIB", "0"),
            ("LLAVA_MATMUL_SMALL", "gemm,fastest"),
            ("LLAVA_OPS_STATS", "verbose"),
        ] {
            let e = KernelOptions::from_vars([(name, value)]).unwrap_err();
            assert!(
                matches!(&e, OptionsError::InvalidValue { name: n, .. } if n == name),
                "{name}={value}: {e}"
            );
        }
        // An empty value is unset.
        assert_eq!(
            KernelOptions::from_vars([("LLAVA_OPS_OFF", "")]).unwrap(),
            KernelOptions::default()
        );
    }

    #[test]
    fn every_variable_is_documented_in_knobs_md() {
        let knobs = include_str!("../../../docs/knobs.md");
        for (name, _) in VARIABLES {
            assert!(
                knobs.contains(&format!("`{name}`")),
                "{name} missing from docs/knobs.md"
            );
        }
        for k in Kernel::ALL {
            assert!(
                knobs.contains(&format!("`{}`", k.name())),
                "{k} missing from docs/knobs.md"
            );
        }
    }
}
