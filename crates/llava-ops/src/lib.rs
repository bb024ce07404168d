//! The model's tensor ops, one dispatcher per op.
//!
//! Model code calls [`causal_attention`], [`linear`], [`rms_norm`], … and gets a tensor back;
//! which implementation runs is chosen here, never in the model crates:
//! - on CUDA (feature `cuda`), our kernels (`cuda::*`: flash attention, GEMVs, row kernels),
//!   cuBLAS for prompt products, and cubek's kernels with a strategy picked from the shape
//!   ([`choice`]; burn 0.22 without autotune launches one default kernel per op whatever the
//!   shape, docs/cuda.md);
//! - everywhere else, and always under autodiff ([`route`]), the [`reference`] path: burn's
//!   ops with transformers' roundings, which the CPU parity tests exercise. Under autodiff the
//!   ops with a parameter shared by all rows lay the rows out in chunks first, so that the
//!   parameter's gradient sums in wide stages (`chunked`).
//!
//! Every switch between them is a field of [`options::KernelOptions`] (docs/knobs.md).

mod attention;
pub mod choice;
mod chunked;
#[cfg(feature = "cuda")]
pub mod cuda;
mod error;
mod graph;
mod linear;
pub mod options;
pub mod reference;
#[cfg(feature = "cuda")]
mod route;
mod rows;

pub use attention::{attention_probs, causal_attention, full_attention};
pub use error::OpsError;
pub use graph::{
    RecordError, Recording, free_memory, graph_replay_available, overwrite, overwrite_int, record,
};
pub use linear::{linear, linear_group, matmul, matmul_wide, patch_linear, swiglu};
pub use options::{Kernel, KernelOptions};
pub use rows::{
    add_rms_norm, argmax_last, gelu, layer_norm, max_last, mean_last, quick_gelu, rms_norm,
    rope_bshd, silu_mul, softmax_last, sum_last,
};

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Tensor, TensorData};

    fn t2(values: &[f32], shape: [usize; 2]) -> Tensor<2> {
        Tensor::from_data(TensorData::new(values.to_vec(), shape), &Device::flex())
    }

    #[test]
    fn linear_multiplies_by_the_transposed_weight_and_adds_the_bias() {
        let x = t2(&[1.0, 2.0, 3.0, 4.0], [2, 2]);
        let w = t2(&[1.0, 0.0, 1.0, 1.0, 0.0, 2.0], [3, 2]); // [out 3, in 2]
        let b = Tensor::<1>::from_data(
            TensorData::new(vec![0.5f32, 0.0, -1.0], [3]),
            &Device::flex(),
        );
        let y = linear(x, w, Some(b)).try_into_vec_as::<f32>().unwrap();
        assert_eq!(y, vec![1.5, 3.0, 3.0, 3.5, 7.0, 7.0]);
    }

    #[test]
    fn softmax_rows_sum_to_one_and_keep_order() {
        let p = softmax_last(t2(&[0.0, 1.0, 2.0, 5.0, 5.0, 5.0], [2, 3]))
            .try_into_vec_as::<f32>()
            .unwrap();
        let e = [1.0f32, 1f32.exp(), 2f32.exp()];
        let s: f32 = e.iter().sum();
        for (got, want) in p.iter().zip([
            e[0] / s,
            e[1] / s,
            e[2] / s,
            1.0 / 3.0,
            1.0 / 3.0,
            1.0 / 3.0,
        ]) {
            assert!((got - want).abs() < 1e-6, "{p:?}");
        }
    }

    #[test]
    fn row_reductions_and_argmax_take_the_first_maximum() {
        let x = t2(&[1.0, 7.0, 7.0, -2.0, -1.0, -3.0], [2, 3]);
        assert_eq!(
            max_last(x.clone()).try_into_vec_as::<f32>().unwrap(),
            vec![7.0, -1.0]
        );
        assert_eq!(
            sum_last(x.clone()).try_into_vec_as::<f32>().unwrap(),
            vec![15.0, -6.0]
        );
        assert_eq!(
            mean_last(x.clone()).try_into_vec_as::<f32>().unwrap(),
            vec![5.0, -2.0]
        );
        assert_eq!(argmax_last(x).try_into_vec_as::<i64>().unwrap(), vec![1, 1]);
    }

    #[test]
    fn layer_norm_centres_scales_and_shifts_each_row() {
        // Row [1, 2, 3, 6]: mean 3, variance (4 + 1 + 0 + 9) / 4 = 3.5.
        let x = t2(&[1.0, 2.0, 3.0, 6.0, 5.0, 5.0, 5.0, 5.0], [2, 4]);
        let one =
            |v: [f32; 4]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [4]), &Device::flex());
        let y = layer_norm(x, one([1.0, 2.0, 1.0, 1.0]), one([0.0, 0.0, 0.5, 0.0]), 0.5)
            .try_into_vec_as::<f32>()
            .unwrap();
        let inv = 1.0 / 4f32.sqrt();
        let want = [-2.0 * inv, -2.0 * inv, 0.5, 3.0 * inv, 0.0, 0.0, 0.5, 0.0];
        for (got, want) in y.iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "{y:?}");
        }
    }
}
