//! Products: the cubek strategy per shape, and one named strategy for the sweep.

use std::sync::OnceLock;

use burn::tensor::{DType, Tensor};
use burn_backend::cubecl::dtype_to_storage_type;
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::matmul::init_matmul_output;
use burn_cubecl::tensor::CubeTensor;
use cubek::matmul::definition::{MatmulElems, MatmulGlobalElems};
use cubek::matmul::multi_level::Strategy as Ml;
use cubek::matmul::multi_level::components::tile::TileMatmulKind;
use cubek::matmul::multi_level::routines::TileSizeSelection;
use cubek::matmul::multi_level::routines::batch::{
    double_buffering::DoubleBufferingArgs, double_unit::DoubleUnitSelectionArgs,
    ordered_double_buffering::OrderedSelectionArgs, simple::SimpleArgs,
    simple_unit::SimpleUnitSelectionArgs,
};
use cubek::matmul::routine::BlueprintStrategy;
use cubek::matmul::strategy::Strategy;
use cubek::std::InputBinding;

use super::on_cuda;
use super::stats::timed;
use crate::OpsError;
use crate::choice::{MatmulPlan, matmul_plan};

/// The cubek strategy called `name` in [`crate::options::MATMUL_STRATEGIES`].
pub fn matmul_strategy(name: &str) -> Option<Strategy> {
    use BlueprintStrategy::Inferred;
    let simple = |multi_rows, tile_matmul| SimpleArgs {
        multi_rows,
        tile_matmul,
    };
    let ordered = |row_count, tile_matmul| OrderedSelectionArgs {
        partition_k: Some(2),
        row_count: Some(row_count),
        rows_per_plane: Some(2),
        tile_matmul,
    };
    let double = |specialized, tile_matmul| DoubleBufferingArgs {
        specialized,
        tile_matmul,
    };
    let (cmma, mma) = (TileMatmulKind::Cmma, TileMatmulKind::Mma);
    let ml = match name {
        "auto" => return Some(Strategy::Auto),
        "naive" => Ml::Naive,
        "vecmat" => Ml::SimpleVecMat(Inferred(().into())),
        "double_vecmat" => Ml::DoubleVecMat(Inferred(().into())),
        "gemv_perpendicular" => Ml::GemvUnitPerpendicular(Inferred(Default::default())),
        "gemm" => Ml::Gemm(Inferred(Default::default())),
        "gemm_no_stage" => Ml::Gemm(Inferred(
            cubek::matmul::multi_level::routines::gemm::GemmStrategy {
                target_num_planes: None,
            },
        )),
        "unit_max" | "unit_min" | "double_unit_max" | "double_unit_min" => {
            let tile_size = if name.ends_with("max") {
                TileSizeSelection::MaxTileSize
            } else {
                TileSizeSelection::MinTileSize
            };
            if name.starts_with("double") {
                Ml::DoubleUnit(Inferred(DoubleUnitSelectionArgs { tile_size }))
            } else {
                Ml::SimpleUnit(Inferred(SimpleUnitSelectionArgs { tile_size }))
            }
        }
        "cyclic_cmma" => Ml::SimpleCyclicCmma(Inferred(simple(false, cmma))),
        "cyclic_mma" => Ml::SimpleCyclicMma(Inferred(simple(false, mma))),
        "cyclic_cmma_rows" => Ml::SimpleCyclicCmma(Inferred(simple(true, cmma))),
        "cyclic_mma_rows" => Ml::SimpleCyclicMma(Inferred(simple(true, mma))),
        "ordered_cmma4" => Ml::OrderedDoubleCmma(Inferred(ordered(4, cmma))),
        "ordered_mma4" => Ml::OrderedDoubleMma(Inferred(ordered(4, mma))),
        "ordered_cmma8" => Ml::OrderedDoubleCmma(Inferred(ordered(8, cmma))),
        "ordered_mma8" => Ml::OrderedDoubleMma(Inferred(ordered(8, mma))),
        "double_cyclic_cmma" => Ml::DoubleCyclicCmma(Inferred(double(false, cmma))),
        "double_cyclic_mma" => Ml::DoubleCyclicMma(Inferred(double(false, mma))),
        "specialized_double_cmma" => Ml::DoubleCyclicCmma(Inferred(double(true, cmma))),
        "specialized_double_mma" => Ml::DoubleCyclicMma(Inferred(double(true, mma))),
        "specialized_cyclic_cmma" => Ml::SpecializedCyclicCmma(Inferred(().into())),
        "specialized_cyclic_mma" => Ml::SpecializedCyclicMma(Inferred(().into())),
        "tma_cmma" => Ml::SimpleTmaCmma(Inferred(simple(false, cmma))),
        "tma_mma" => Ml::SimpleTmaMma(Inferred(simple(false, mma))),
        "tma_cmma_rows" => Ml::SimpleTmaCmma(Inferred(simple(true, cmma))),
        "tma_mma_rows" => Ml::SimpleTmaMma(Inferred(simple(true, mma))),
        "specialized_tma_cmma" => Ml::SpecializedTmaCmma(Inferred(().into())),
        "specialized_tma_mma" => Ml::SpecializedTmaMma(Inferred(().into())),
        _ => return None,
    };
    Some(Strategy::MultiLevel(ml))
}

/// The strategies to try, in order, for a plan: the first that accepts the problem runs, and
/// burn's default closes every list. The lists are `KernelOptions::matmul` (docs/knobs.md);
/// the defaults are the fastest in the sweep on an H200 (docs/benchmarks.md).
fn strategies(plan: MatmulPlan) -> &'static [Strategy] {
    static LISTS: OnceLock<[Vec<Strategy>; 5]> = OnceLock::new();
    let lists = LISTS.get_or_init(|| {
        let m = &crate::options::current().matmul;
        let list = |names: &[crate::options::MatmulStrategy]| {
            let mut list: Vec<Strategy> = names
                .iter()
                .filter_map(|n| matmul_strategy(n.name()))
                .collect();
            list.push(Strategy::Auto);
            list
        };
        let batched = match &m.batched {
            crate::options::BatchedMatmul::Split => Vec::new(),
            crate::options::BatchedMatmul::Kernels(names) => names.clone(),
        };
        [
            list(&m.small),
            list(&m.small_wide),
            list(&m.large),
            list(&batched),
            list(&m.default),
        ]
    });
    let index = match plan {
        MatmulPlan::Small => 0,
        MatmulPlan::SmallWide => 1,
        MatmulPlan::Large => 2,
        MatmulPlan::Batched => 3,
        MatmulPlan::Default => 4,
    };
    &lists[index]
}

/// `lhs · rhs` through the plan for its shape; `None` when the route does not apply.
pub fn matmul<const D: usize>(lhs: &Tensor<D>, rhs: &Tensor<D>) -> Option<Tensor<D>> {
    matmul_to(lhs, rhs, None)
}

/// `lhs · rhs` written in f32 by the kernel; `None` when the route does not apply.
pub fn matmul_wide<const D: usize>(lhs: &Tensor<D>, rhs: &Tensor<D>) -> Option<Tensor<D>> {
    matmul_to(lhs, rhs, Some(DType::F32))
}

fn matmul_to<const D: usize>(
    lhs: &Tensor<D>,
    rhs: &Tensor<D>,
    out_dtype: Option<DType>,
) -> Option<Tensor<D>> {
    let (l, r) = (on_cuda(lhs)?, on_cuda(rhs)?);
    let (ls, rs) = (lhs.dims(), rhs.dims());
    if l.dtype != r.dtype || ls[..D - 2] != rs[..D - 2] {
        return None;
    }
    let (m, k, n) = (ls[D - 2], ls[D - 1], rs[D - 1]);
    let batch = ls[..D - 2].iter().product::<usize>();
    let half = matches!(l.dtype, DType::BF16 | DType::F16);
    let plan = matmul_plan(m, k, n, batch > 1, half);
    let out_dtype = out_dtype.unwrap_or(l.dtype);
    let in_dtype = l.dtype;
    let key = || format!("matmul b{batch} {m}x{k}x{n} {in_dtype:?}->{out_dtype:?} {plan:?}");
    timed(key, || {
        // Half-precision products with more than decode rows and enough work to be worth
        // cuBLAS's round trip (`cublas::worth_round_trip`): the decoder's prompt projections.
        let flops = 2.0 * (batch * m * k * n) as f64;
        let to_blas = half
            && !matches!(plan, MatmulPlan::Small | MatmulPlan::SmallWide)
            && super::cublas::worth_round_trip(flops);
        let blas = to_blas
            .then(|| super::cublas::matmul(&l, &r, out_dtype))
            .flatten();
        if let Some(product) = &blas
            && super::cublas::checked()
        {
            let out = init_matmul_output(&l, &r, out_dtype);
            let layout = (l.meta.strides()[D - 1] == 1, r.meta.strides()[D - 1] == 1);
            if let Some(reference) =
                launch_plan((plan, batch, m, k, n, layout), l.clone(), r.clone(), out)
            {
                super::cublas::report_check::<D>(
                    &l,
                    &r,
                    Tensor::from_primitive::<CubeBackend>(product.clone()),
                    Tensor::from_primitive::<CubeBackend>(reference),
                );
            }
        }
        let product = if blas.is_some() {
            blas
        } else if plan == MatmulPlan::Batched && batched_split() {
            split_batches(&l, &r, out_dtype, (m, k, n))
        } else {
            let out = init_matmul_output(&l, &r, out_dtype);
            let layout = (l.meta.strides()[D - 1] == 1, r.meta.strides()[D - 1] == 1);
            launch_plan((plan, batch, m, k, n, layout), l, r, out)
        };
        product.map(Tensor::from_primitive::<CubeBackend>)
    })
}

/// Runs the first strategy of `problem`'s plan that takes it, writing into `out`. Strategies
/// that declined this problem before are skipped: each refusal costs a blueprint set-up on
/// every call otherwise (the decode `probs·V` product, every layer and step).
fn launch_plan(
    problem: Problem,
    l: CubeTensor,
    r: CubeTensor,
    out: CubeTensor,
) -> Option<CubeTensor> {
    let start = first_accepted()
        .lock()
        .ok()
        .and_then(|c| c.get(&problem).copied());
    let list = strategies(problem.0);
    let (index, product) = (start.unwrap_or(0)..list.len()).find_map(|i| {
        let product = launch_matmul_into(&list[i], l.clone(), r.clone(), out.clone()).ok()?;
        Some((i, product))
    })?;
    if start != Some(index)
        && let Ok(mut cache) = first_accepted().lock()
    {
        cache.insert(problem, index);
    }
    Some(product)
}

/// Whether batched half products run batch by batch (`LLAVA_MATMUL_BATCHED=split`, the
/// default) rather than through a batched kernel from the list.
fn batched_split() -> bool {
    crate::options::current().matmul.batched == crate::options::BatchedMatmul::Split
}

/// A batched product as one 2-D product per batch through the `Large` plan, each written into
/// its slice of one output. cubek's TMA kernels take these shapes unbatched (200+ TFLOP/s on
/// the projections) but fail at launch batched, and burn's default batched kernel runs at about
/// 30 TFLOP/s: prefill attention took about 150 ms of a 7B first token that way.
fn split_batches(
    l: &CubeTensor,
    r: &CubeTensor,
    out_dtype: DType,
    (m, k, n): (usize, usize, usize),
) -> Option<CubeTensor> {
    let out = init_matmul_output(l, r, out_dtype);
    let shape = l.meta.shape().to_vec();
    let batch_dims = &shape[..shape.len() - 2];
    let align = l.client.properties().memory.alignment;
    let last = shape.len() - 1;
    let layout = (l.meta.strides()[last] == 1, r.meta.strides()[last] == 1);
    let problem = (MatmulPlan::Large, 1, m, k, n, layout);
    // Every view is made before any launch: a batch whose slice cannot be a view leaves the
    // whole product to burn's kernel, with nothing written.
    let views = (0..batch_dims.iter().product::<usize>())
        .map(|i| {
            let index = unravel(i, batch_dims);
            Some((
                batch_view(l, &index, align)?,
                batch_view(r, &index, align)?,
                batch_view(&out, &index, align)?,
            ))
        })
        .collect::<Option<Vec<_>>>()?;
    for (lv, rv, ov) in views {
        launch_plan(problem, lv, rv, ov)?;
    }
    Some(out)
}

/// The multi-dimensional index of batch `i` over `dims` (row-major).
fn unravel(mut i: usize, dims: &[usize]) -> Vec<usize> {
    let mut index = vec![0; dims.len()];
    for (slot, &dim) in index.iter_mut().zip(dims).rev() {
        *slot = i % dim;
        i /= dim;
    }
    index
}

/// The batch at `index` of `t` as a tensor with batch dims of 1 sharing `t`'s buffer (so a
/// product launched into it writes `t`), or `None` when its offset breaks the buffer alignment.
fn batch_view(t: &CubeTensor, index: &[usize], align: u64) -> Option<CubeTensor> {
    let elems: usize = index
        .iter()
        .zip(t.meta.strides().iter())
        .map(|(i, s)| i * s)
        .sum();
    let offset = (elems * t.dtype.size()) as u64;
    if !offset.is_multiple_of(align.max(1)) {
        return None;
    }
    let mut meta = (*t.meta).clone();
    for dim in 0..index.len() {
        meta.shape[dim] = 1;
    }
    Some(CubeTensor::new(
        t.client.clone(),
        t.handle.clone().offset_start(offset),
        meta,
        t.device.clone(),
        t.dtype,
    ))
}

/// A product's plan, batch, m, k, n and whether lhs / rhs are contiguous along their last dim.
type Problem = (MatmulPlan, usize, usize, usize, usize, (bool, bool));

/// For each problem seen, the index in its strategy list of the first strategy that took it.
fn first_accepted() -> &'static std::sync::Mutex<std::collections::HashMap<Problem, usize>> {
    static CACHE: OnceLock<std::sync::Mutex<std::collections::HashMap<Problem, usize>>> =
        OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// `x · weightᵀ` for `weight` `[d_output, d_input]`, `x` flattened to rows.
pub fn linear<const D: usize>(x: &Tensor<D>, weight: &Tensor<2>) -> Option<Tensor<D>> {
    let dims = x.dims();
    let d_input = dims[D - 1];
    let rows = dims[..D - 1].iter().product();
    let x2 = x.clone().reshape([rows, d_input]);
    let gemv = super::kernel_on(super::Kernel::Gemv)
        .then(|| super::gemv::gemv_tensors(&x2, weight))
        .flatten();
    let y = match gemv {
        Some(y) => y,
        None => matmul(&x2, &weight.clone().transpose())?,
    };
    let mut out = dims;
    out[D - 1] = weight.dims()[0];
    Some(y.reshape(out))
}

/// `lhs · rhs` in `out_dtype` with one named strategy (or `cublas`: cuBLAS whatever the
/// product's size, on cubecl's stream where it is found), for the sweep; the error says why it
/// declined.
pub fn matmul_with<const D: usize>(
    name: &str,
    lhs: &Tensor<D>,
    rhs: &Tensor<D>,
    out_dtype: DType,
) -> Result<Tensor<D>, OpsError> {
    let declined = |why: &str| OpsError::Declined(why.to_string());
    let (l, r) = match (on_cuda(lhs), on_cuda(rhs)) {
        (Some(l), Some(r)) => (l, r),
        _ => return Err(declined("not a CUDA float tensor")),
    };
    if name == "cublas" {
        return super::cublas::matmul(&l, &r, out_dtype)
            .map(Tensor::from_primitive::<CubeBackend>)
            .ok_or_else(|| declined("cuBLAS declined the product (off, not loaded or a layout)"));
    }
    let strategy =
        matmul_strategy(name).ok_or_else(|| declined(&format!("unknown strategy {name}")))?;
    // A kernel that fails at launch (not at setup) writes nothing: the NaN fill shows that,
    // where a reused buffer would still hold the previous candidate's correct product.
    let mut shape = lhs.dims();
    shape[D - 1] = rhs.dims()[D - 1];
    let nan = Tensor::<D>::full(shape, f32::NAN, (&lhs.device(), out_dtype));
    let out = on_cuda(&nan).ok_or_else(|| declined("not a CUDA float tensor"))?;
    launch_matmul_into(&strategy, l, r, out).map(Tensor::from_primitive::<CubeBackend>)
}

fn launch_matmul_into(
    strategy: &Strategy,
    lhs: CubeTensor,
    rhs: CubeTensor,
    out: CubeTensor,
) -> Result<CubeTensor, OpsError> {
    let elem = dtype_to_storage_type(lhs.dtype);
    let mut dtypes = MatmulElems::from_globals(&MatmulGlobalElems {
        lhs: elem,
        rhs: elem,
        out: dtype_to_storage_type(out.dtype),
    });
    let client = out.client.clone();
    cubek::matmul::launch::launch_ref(
        strategy,
        &client,
        InputBinding::new(lhs.binding(), elem),
        InputBinding::new(rhs.binding(), elem),
        out.clone().binding(),
        &mut dtypes,
    )
    .map_err(|e| OpsError::Declined(format!("{e:?}")))?;
    Ok(out)
}

/// `[x · w_iᵀ]` for prompt rows (more than [`crate::choice::SMALL_M`]) of half precision in one
/// cuBLAS group: one wait for cubecl's stream before the products and one for cuBLAS's after,
/// instead of one each per product (a layer's q/k/v or gate/up; measured faster, docs/knobs.md).
/// `LLAVA_OPS_OFF=blas_group` turns it off.
/// With `biases` (one per weight), cuBLAS writes f32 sums, the bias is added in f32 and the sum
/// rounded once, as [`linear_bias`] does. `None` where it does not apply, and the caller then
/// runs [`linear`] per weight.
pub fn linear_group<const D: usize>(
    x: &Tensor<D>,
    weights: &[&Tensor<2>],
    biases: &[&Tensor<1>],
) -> Option<Vec<Tensor<D>>> {
    if !super::kernel_on(super::Kernel::BlasGroup)
        || weights.is_empty()
        || !(biases.is_empty() || biases.len() == weights.len())
    {
        return None;
    }
    let dims = x.dims();
    let k = dims[D - 1];
    let rows: usize = dims[..D - 1].iter().product();
    if rows <= crate::choice::SMALL_M {
        return None;
    }
    let x2 = x.clone().reshape([rows, k]);
    let xc = on_cuda(&x2)?;
    let half = matches!(xc.dtype, DType::BF16 | DType::F16);
    let flops: f64 = weights
        .iter()
        .map(|w| 2.0 * (rows * k * w.dims()[0]) as f64)
        .sum();
    if !half || !weights.iter().all(|w| w.dims()[1] == k) || !super::cublas::worth_round_trip(flops)
    {
        return None;
    }
    // Each `[rows, n_i]` output back to `x`'s leading dims.
    let shaped = |outs: Vec<Tensor<2>>| -> Vec<Tensor<D>> {
        outs.into_iter()
            .zip(weights)
            .map(|(y, w)| {
                let mut shape = dims;
                shape[D - 1] = w.dims()[0];
                y.reshape(shape)
            })
            .collect()
    };
    let transposed = weights
        .iter()
        .map(|w| on_cuda(&(*w).clone().transpose()))
        .collect::<Option<Vec<_>>>()?;
    let rhss: Vec<&CubeTensor> = transposed.iter().collect();
    let dtype = xc.dtype;
    let sums = if biases.is_empty() { dtype } else { DType::F32 };
    let key = || {
        format!(
            "linear group {rows}x{k} into {} products {dtype:?}->{sums:?}",
            weights.len()
        )
    };
    let outs = timed(key, || {
        super::cublas::matmul_group(&xc, &rhss, sums).map(|outs| {
            outs.into_iter()
                .map(Tensor::<2>::from_primitive::<CubeBackend>)
                .collect::<Vec<_>>()
        })
    })?;
    let outs: Vec<Tensor<2>> = if biases.is_empty() {
        outs
    } else {
        outs.into_iter()
            .zip(biases)
            .map(|(y, b)| add_bias_rounded(y, b, dtype))
            .collect()
    };
    Some(shaped(outs))
}

/// `x · weightᵀ + bias` for `weight` `[d_output, d_input]`. Prompt rows of half precision take
/// the product in f32 (cuBLAS writes the f32 sums), add the bias in f32 and round once, as
/// PyTorch's `addmm` does in its epilogue; up to [`crate::choice::SMALL_M`] rows (decode: the
/// GEMV or the small-product plan) take [`linear`] and add the bias to the rounded product.
pub fn linear_bias<const D: usize>(
    x: &Tensor<D>,
    weight: &Tensor<2>,
    bias: &Tensor<1>,
) -> Option<Tensor<D>> {
    let dims = x.dims();
    let d_input = dims[D - 1];
    let rows: usize = dims[..D - 1].iter().product();
    let dtype = x.dtype();
    let half = matches!(dtype, DType::BF16 | DType::F16);
    if !half || rows <= crate::choice::SMALL_M {
        return linear(x, weight).map(|y| y + bias.clone().unsqueeze::<D>());
    }
    let x2 = x.clone().reshape([rows, d_input]);
    let sums = matmul_to(&x2, &weight.clone().transpose(), Some(DType::F32))?;
    let y = add_bias_rounded(sums, bias, dtype);
    let mut out = dims;
    out[D - 1] = weight.dims()[0];
    Some(y.reshape(out))
}

/// `sums + bias` (f32 sums `[rows, width]`) rounded once to `dtype`: one kernel, or burn's add
/// and cast where it does not take them.
fn add_bias_rounded(sums: Tensor<2>, bias: &Tensor<1>, dtype: DType) -> Tensor<2> {
    super::elementwise::bias_round(&sums, bias, dtype)
        .unwrap_or_else(|| (sums + bias.clone().cast(DType::F32).unsqueeze::<2>()).cast(dtype))
}
