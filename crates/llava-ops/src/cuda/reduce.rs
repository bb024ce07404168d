//! Reductions over the last dim: the cubek routine per shape, and one named routine for the
//! sweep.

use burn::tensor::{DType, Int, Tensor};
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::reduce::{KernelReduceStrategy, reduce_dim};
use cubek::reduce::ReduceStrategy;
use cubek::reduce::components::instructions::ReduceOperationConfig;
use cubek::reduce::launch::{RoutineStrategy, VectorizationStrategy};
use cubek::reduce::routines::{
    BlueprintStrategy as ReduceBlueprint, cube::CubeStrategy, plane::PlaneStrategy,
    unit::UnitStrategy,
};

use super::on_cuda;
use super::stats::timed;
use crate::OpsError;
use crate::choice::reduce_routine;
use burn_cubecl::tensor::CubeTensor;

/// A reduction over the last dim.
#[derive(Clone, Copy, Debug)]
pub enum RowOp {
    Max,
    Sum,
    Mean,
}

/// The reduce routines the sweep can time.
pub const REDUCE_ROUTINES: &[&str] = &["unit", "plane", "cube"];

fn reduce_strategy(routine: &str) -> Option<KernelReduceStrategy> {
    let routine = match routine {
        "unit" => RoutineStrategy::Unit(ReduceBlueprint::Inferred(UnitStrategy)),
        "plane" => RoutineStrategy::Plane(ReduceBlueprint::Inferred(PlaneStrategy {
            independent: true,
        })),
        "cube" => {
            RoutineStrategy::Cube(ReduceBlueprint::Inferred(CubeStrategy { use_planes: true }))
        }
        _ => return None,
    };
    Some(KernelReduceStrategy::Specific(ReduceStrategy {
        routine,
        vectorization: VectorizationStrategy {
            parallel_output_vectorization: false,
        },
        autotune_level: Default::default(),
    }))
}

fn row_config(op: RowOp) -> ReduceOperationConfig {
    match op {
        RowOp::Max => ReduceOperationConfig::Max,
        RowOp::Sum => ReduceOperationConfig::Sum,
        RowOp::Mean => ReduceOperationConfig::Mean,
    }
}

/// The reduction `op` over the last dim; `None` when the route does not apply.
pub fn reduce_last<const D: usize>(x: &Tensor<D>, op: RowOp) -> Option<Tensor<D>> {
    let dims = x.dims();
    let (len, rows) = (dims[D - 1], dims[..D - 1].iter().product());
    let routine = reduce_routine(rows, len);
    timed(
        || format!("{op:?} {rows}x{len} {routine}"),
        || reduce_last_with(routine, x, op).ok(),
    )
}

/// The reduction `op` over the last dim with one named routine, for the sweep.
pub fn reduce_last_with<const D: usize>(
    routine: &str,
    x: &Tensor<D>,
    op: RowOp,
) -> Result<Tensor<D>, OpsError> {
    let (strategy, prim) = routine_and_operand(routine, x)?;
    reduce_dim(prim, None, D - 1, strategy, row_config(op))
        .map(Tensor::from_primitive::<CubeBackend>)
        .map_err(|e| OpsError::Declined(format!("{e:?}")))
}

/// Softmax over the last dim as max-shifted exponentials over their sum, both reductions
/// routed; `None` when the route does not apply.
pub fn softmax_last<const D: usize>(x: &Tensor<D>) -> Option<Tensor<D>> {
    let shifted = x.clone() - reduce_last(x, RowOp::Max)?;
    let e = shifted.exp();
    let total = reduce_last(&e, RowOp::Sum)?;
    Some(e / total)
}

/// Each row's argmax (first on ties), `[rows, 1]`; `None` when the route does not apply.
pub fn argmax_last(x: &Tensor<2>) -> Option<Tensor<2, Int>> {
    let [rows, len] = x.dims();
    let routine = reduce_routine(rows, len);
    timed(
        || format!("argmax {rows}x{len} {routine}"),
        || argmax_last_with(routine, x).ok(),
    )
}

/// Each row's argmax with one named routine, for the sweep.
pub fn argmax_last_with(routine: &str, x: &Tensor<2>) -> Result<Tensor<2, Int>, OpsError> {
    let (strategy, prim) = routine_and_operand(routine, x)?;
    reduce_dim(
        prim,
        Some(DType::I32),
        1,
        strategy,
        ReduceOperationConfig::ArgMax,
    )
    .map(Tensor::<2, Int>::from_primitive::<CubeBackend>)
    .map_err(|e| OpsError::Declined(format!("{e:?}")))
}

/// The named routine and `x`'s CubeCL tensor, or why not.
fn routine_and_operand<const D: usize>(
    routine: &str,
    x: &Tensor<D>,
) -> Result<(KernelReduceStrategy, CubeTensor), OpsError> {
    let strategy = reduce_strategy(routine)
        .ok_or_else(|| OpsError::Declined(format!("unknown routine {routine}")))?;
    let prim = on_cuda(x).ok_or_else(|| OpsError::Declined("not a CUDA float tensor".into()))?;
    Ok((strategy, prim))
}
