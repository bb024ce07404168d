//! Under autodiff, a parameter that every row shares (a linear's weight and bias, a norm's
//! scale and shift) gets a gradient summed over all of a batch's rows. burn's backward makes
//! that one reduction per parameter: the weight's `[d_in, rows] · [rows, d_out]` product and
//! the bias's sum over the rows, whose few outputs each run over every row (~5·10⁴ at batch
//! 128 of the demo model), so a GPU runs them on a handful of its cores. Those two were about
//! half of a training step's kernel time there (docs/demo-model.md § Status).
//!
//! Here the rows are first split into `chunks` of `rows` rows (`[chunks, rows, features]`,
//! a view), the weight is broadcast over the chunks and a shared vector is laid over the
//! chunks and rows with `expand`, so that burn's backward sums in stages that are each wide:
//! a batched product per chunk, then a sum over the chunks; a sum over the chunks, then over
//! a chunk's rows. The forward values are the same products and sums (the order of the
//! gradient's additions differs).

use burn::tensor::Tensor;

/// Fewer rows than this keep burn's one reduction (it is wide enough relative to the work).
const MIN_ROWS: usize = 4096;

/// How a `[.., features]` tensor's rows split: `chunks × rows`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Split {
    pub chunks: usize,
    pub rows: usize,
}

/// The split of `total` rows into chunks of 256–2048 rows (the nearest to 512 that divides
/// `total`), or `None` when there are too few rows or no such divisor.
pub(crate) fn split_rows(total: usize) -> Option<Split> {
    if total < MIN_ROWS {
        return None;
    }
    (0..=1536)
        .flat_map(|d| [512 + d, 512usize.saturating_sub(d)])
        .filter(|&rows| (256..=2048).contains(&rows))
        .find(|&rows| total.is_multiple_of(rows))
        .map(|rows| Split {
            chunks: total / rows,
            rows,
        })
}

/// The split of `x`'s rows when `x` is tracked for gradients (on an autodiff device), else
/// `None`.
pub(crate) fn split_of<const D: usize>(x: &Tensor<D>) -> Option<Split> {
    if D < 2 || !x.device().is_autodiff() {
        return None;
    }
    let dims = x.dims();
    split_rows(dims[..D - 1].iter().product())
}

/// `x` `[.., f]` as `[chunks, rows, f]`.
pub(crate) fn chunked<const D: usize>(x: Tensor<D>, split: Split) -> Tensor<3> {
    let f = x.dims()[D - 1];
    x.reshape([split.chunks, split.rows, f])
}

/// `v` `[f]` laid over `[chunks, rows, f]` (a view), so its gradient sums over the chunks,
/// then over the rows.
pub(crate) fn spread(v: Tensor<1>, split: Split) -> Tensor<3> {
    let f = v.dims()[0];
    v.reshape([1, 1, f]).expand([split.chunks, split.rows, f])
}

/// `[chunks, rows, f]` back to `like`'s leading dims with `f` features.
pub(crate) fn unchunked<const D: usize>(y: Tensor<3>, like: [usize; D]) -> Tensor<D> {
    let mut dims = like;
    dims[D - 1] = y.dims()[2];
    y.reshape(dims)
}

/// `x · w` (`w` `[d_in, d_out]`) plus `bias`, in `x`'s dtype, by chunks.
pub(crate) fn linear<const D: usize>(
    x: Tensor<D>,
    w: Tensor<2>,
    bias: Option<Tensor<1>>,
    split: Split,
) -> Tensor<D> {
    let dims = x.dims();
    let y = chunked(x, split).matmul(w.unsqueeze::<3>());
    let y = match bias {
        Some(b) => y + spread(b, split),
        None => y,
    };
    unchunked(y, dims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    #[test]
    fn rows_split_near_512_or_not_at_all() {
        assert_eq!(split_rows(4095), None);
        assert_eq!(
            split_rows(128 * 457),
            Some(Split {
                chunks: 128,
                rows: 457
            })
        );
        assert_eq!(
            split_rows(640 * 65),
            Some(Split {
                chunks: 80,
                rows: 520
            })
        );
        assert_eq!(
            split_rows(8192),
            Some(Split {
                chunks: 16,
                rows: 512
            })
        );
        // 4099 is prime: no chunk size divides it.
        assert_eq!(split_rows(4099), None);
    }

    /// Gradients of weight, bias and input through the chunked linear equal burn's linear.
    #[test]
    fn chunked_linear_has_burns_values_and_gradients() {
        let device = Device::flex().autodiff();
        let init = |shape: Vec<usize>| {
            Tensor::<1>::random(
                [shape.iter().product::<usize>()],
                Distribution::Normal(0.0, 1.0),
                &device,
            )
        };
        let x0 = init(vec![8, 1024, 6]).reshape([8, 1024, 6]);
        let w0 = init(vec![6, 5]).reshape([6, 5]);
        let b0 = init(vec![5]);
        let run = |chunk: bool| {
            let x = x0.clone().detach().require_grad();
            let w = w0.clone().detach().require_grad();
            let b = b0.clone().detach().require_grad();
            let split = split_of(&x).expect("8192 rows split on an autodiff device");
            let y = if chunk {
                linear(x.clone(), w.clone(), Some(b.clone()), split)
            } else {
                burn::tensor::module::linear(x.clone(), w.clone(), Some(b.clone()))
            };
            let loss = (y.clone() * y.clone()).sum();
            let grads = loss.backward();
            let v = |t: Tensor<1>| t.inner().into_data().iter::<f32>().collect::<Vec<_>>();
            let n = |t: &Tensor<3>| t.shape().num_elements();
            [
                v(y.clone().reshape([n(&y)])),
                v(x.grad(&grads).unwrap().reshape([8 * 1024 * 6])),
                v(w.grad(&grads).unwrap().reshape([30])),
                v(b.grad(&grads).unwrap()),
            ]
        };
        let (ours, burns) = (run(true), run(false));
        for (name, (a, b)) in ["y", "dx", "dw", "db"].iter().zip(ours.iter().zip(&burns)) {
            assert_eq!(a.len(), b.len(), "{name}");
            let worst = a
                .iter()
                .zip(b)
                .map(|(p, q)| (p - q).abs() / q.abs().max(1.0))
                .fold(0.0f32, f32::max);
            assert!(worst < 2e-5, "{name}: relative difference {worst}");
        }
    }

    /// A vector spread over the chunks gets the gradient of the same vector broadcast.
    #[test]
    fn spread_vector_gets_the_broadcast_gradient() {
        let device = Device::flex().autodiff();
        let x = Tensor::<1>::random([8 * 1024 * 6], Distribution::Normal(0.0, 1.0), &device)
            .reshape([8, 1024, 6]);
        let v0 = Tensor::<1>::random([6], Distribution::Normal(0.0, 1.0), &device);
        let grad = |spread_it: bool| {
            let v = v0.clone().detach().require_grad();
            let y = if spread_it {
                let split = split_of(&x).expect("split");
                unchunked(
                    chunked(x.clone(), split) * spread(v.clone(), split),
                    x.dims(),
                )
            } else {
                x.clone() * v.clone().unsqueeze::<3>()
            };
            let grads = (y.clone() * y).sum().backward();
            v.grad(&grads)
                .unwrap()
                .into_data()
                .iter::<f32>()
                .collect::<Vec<_>>()
        };
        let (ours, burns) = (grad(true), grad(false));
        for (a, b) in ours.iter().zip(&burns) {
            assert!(
                (a - b).abs() <= 2e-5 * b.abs().max(1.0),
                "{ours:?} vs {burns:?}"
            );
        }
    }
}
