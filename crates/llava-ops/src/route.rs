//! Whether a tensor may take the kernel route: explicitly never under autodiff (training runs
//! the reference path until backward kernels exist behind the same calls), nor with
//! `LLAVA_OPS=burn`. The CUDA functions also decline operands they cannot take (another
//! device, a dtype, a layout), so a dispatcher always ends on the reference path.

use burn::tensor::Tensor;

use crate::options::{Kernel, Route};

/// Whether `x` may take a kernel at all.
pub(crate) fn kernels<const D: usize>(x: &Tensor<D>) -> bool {
    crate::options::current().route == Route::Kernels && !x.device().is_autodiff()
}

/// Whether `x` may take `kernel` (not turned off with `LLAVA_OPS_OFF`).
pub(crate) fn kernel<const D: usize>(x: &Tensor<D>, kernel: Kernel) -> bool {
    kernels(x) && crate::options::current().kernel_on(kernel)
}
