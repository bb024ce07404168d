//! Offline stand-in for `cubecl-llvm` 0.11.3.
//!
//! cubecl-cuda compiles kernels with NVRTC (CUDA C++) when its `cpp` feature is on, and then
//! never reaches the LLVM backend; it still names a handful of cubecl-llvm items. This crate
//! provides those items with the same paths and signatures. Compiling through it returns an
//! error that says how to get the real backend, so a misconfigured build fails loudly.

use core::fmt;

use cubecl_core::ir::nvidia::SmArch;
use cubecl_core::{Compiler, prelude::KernelDefinition};
use cubecl_environment::backtrace::BackTrace;
use cubecl_runtime::compiler::CompilationError;
use cubecl_runtime::kernel::BufferIOAttr;

/// Targets of the LLVM backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LlvmTarget {
    /// Host CPU (JIT).
    #[default]
    Cpu,
    /// NVIDIA PTX.
    Nvptx,
}

/// The PTX side of the LLVM backend.
pub mod nvptx {
    /// The PTX ISA version.
    pub mod ptx_version {
        use core::fmt;
        use std::ffi::CString;

        /// A PTX ISA version, `major·10 + minor` (e.g. 88 for 8.8).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct PtxVersion(u32);

        impl PtxVersion {
            /// The newest PTX version a driver (`major·1000 + minor·10`) loads. The mapping
            /// matters only to the LLVM backend's cache keys, which this build never uses.
            pub fn for_driver(driver: i32) -> Option<Self> {
                let (major, minor) = (driver / 1000, (driver % 1000) / 10);
                // CUDA 12.x ships PTX 8.x, CUDA 13.x PTX 9.x.
                (major >= 12).then(|| Self((major as u32 - 4) * 10 + minor as u32))
            }

            /// The LLVM target-feature string for this version.
            pub fn target_feature(self) -> CString {
                CString::new(format!("+ptx{}", self.0)).expect("no NUL in a number")
            }
        }

        impl fmt::Display for PtxVersion {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "ptx{}", self.0)
            }
        }
    }
}

/// Items shared by the LLVM targets.
pub mod shared {
    /// Narrowing of device features to what the LLVM backend lowers.
    pub mod lowered_features {
        use cubecl_core::ir::DeviceProperties;

        /// The GPU target a device's features would be narrowed for.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum GpuTarget {
            /// NVIDIA.
            Nvptx,
        }

        /// cubecl-cuda calls this only when the LLVM backend is selected, which the `cpp`
        /// feature prevents; nothing is narrowed here.
        pub fn restrict_features(_props: &mut DeviceProperties, _target: GpuTarget) {}
    }
}

/// Options of the LLVM backend (only the fields cubecl-cuda sets).
#[derive(Clone, Debug, Default)]
pub struct PlironOptions {
    /// AMD architecture (unused).
    pub arch: Option<()>,
    /// NVIDIA architecture.
    pub sm_arch: Option<SmArch>,
    /// PTX version.
    pub ptx_version: Option<nvptx::ptx_version::PtxVersion>,
    /// Scalars in the kernel parameter block.
    pub grid_constants: bool,
}

/// A compiled PTX module (never produced by this crate).
#[derive(Clone, Debug)]
pub struct NvptxModule {
    /// NUL-terminated PTX.
    pub ptx: Vec<core::ffi::c_char>,
    /// Entry point.
    pub entrypoint: String,
    /// IR text.
    pub ir: String,
    /// Shared memory per launch.
    pub shared_memory_size: usize,
    /// Buffer access modes.
    pub io: Vec<BufferIOAttr>,
}

/// What the LLVM backend produces.
#[derive(Clone, Debug)]
pub enum PlironArtifact {
    /// PTX.
    NvptxCode(NvptxModule),
    /// Never constructed; keeps cubecl-cuda's catch-all match arm meaningful.
    Unavailable,
}

impl fmt::Display for PlironArtifact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlironArtifact::NvptxCode(m) => f.write_str(&m.ir),
            PlironArtifact::Unavailable => f.write_str("<no LLVM backend>"),
        }
    }
}

/// The LLVM compiler, absent from this build.
#[derive(Clone, Debug, Default)]
pub struct PlironCompiler {
    /// Target.
    pub target: LlvmTarget,
}

impl Compiler for PlironCompiler {
    type Representation = PlironArtifact;
    type CompilationOptions = PlironOptions;

    fn compile(
        &mut self,
        _kernel: KernelDefinition,
        _options: &Self::CompilationOptions,
    ) -> Result<Self::Representation, CompilationError> {
        Err(CompilationError::Generic {
            reason: "this build replaces cubecl-llvm with an offline stand-in; kernels compile \
                     through NVRTC (cubecl-cuda's `cpp` feature). Build with the crates.io \
                     cubecl-llvm for the LLVM backend."
                .into(),
            backtrace: BackTrace::capture(),
        })
    }

    fn extension(&self) -> &'static str {
        "ll"
    }

    fn lang_tag(&self) -> &'static str {
        "llvm"
    }
}
