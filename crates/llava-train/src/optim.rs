//! AdamW with torch's semantics (`torch.optim.AdamW`, single-tensor path): decoupled decay
//! `θ ← θ·(1 − lr·λ)` on the decay group only; `m ← lerp(m, g, 1 − β₁)`;
//! `v ← β₂·v + (1 − β₂)·g²`; `θ ← θ − lr/(1 − β₁ᵗ) · m / (√v/√(1 − β₂ᵗ) + ε)`, the bias
//! corrections in f64. burn's AdamW adds ε after dividing v by its correction and rounds the
//! corrections to f32 (`../shared/spec/training.md` §2.3), hence this one.
//!
//! Parameters are updated together: those of one decay group and dtype are concatenated into
//! one flat tensor, so a step is a dozen element-wise kernels over all of them instead of a
//! dozen per parameter (a few thousand launches a step for the demo model's 147 tensors), and
//! their moments stay flat between steps. The arithmetic per element is the same as one tensor
//! at a time. Moments are read and written per parameter path (checkpoints), in the
//! parameter's dtype, flattened.

use std::collections::BTreeMap;

use burn::tensor::{DType, Tensor};

/// Hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ε (torch and transformers: 1e-8).
    pub epsilon: f64,
    /// λ.
    pub weight_decay: f64,
}

/// The first and second moments of one parameter.
#[derive(Debug, Clone)]
pub struct Moments {
    /// `exp_avg`.
    pub exp_avg: Tensor<1>,
    /// `exp_avg_sq`.
    pub exp_avg_sq: Tensor<1>,
}

/// The optimizer and its state.
#[derive(Debug, Clone)]
pub struct AdamW {
    /// Hyper-parameters.
    pub config: AdamWConfig,
    /// Steps taken (the bias corrections' t).
    pub steps: u64,
    /// Moments of parameters outside any flat group, by path.
    loose: BTreeMap<String, Moments>,
    /// Flat moments of the groups the last step updated.
    groups: Vec<FlatMoments>,
    /// The most elements a group gathers (one tensor larger than that is a group alone).
    group_elements: usize,
}

/// Elements of one flat group at most: gathering copies a group's values and gradients once
/// more, so the cap bounds that extra memory (256 MB each in f32) where a 7B model's full
/// fine-tuning would otherwise hold a second copy of all of them.
const GROUP_ELEMENTS: usize = 1 << 26;

/// The moments of one group's parameters, concatenated in the group's order.
#[derive(Debug, Clone)]
struct FlatMoments {
    /// (path, elements) of each member, in order.
    members: Vec<(String, usize)>,
    exp_avg: Tensor<1>,
    exp_avg_sq: Tensor<1>,
}

impl FlatMoments {
    /// Each member's moments (slices of the flat tensors).
    fn split(self) -> impl Iterator<Item = (String, Moments)> {
        let mut at = 0;
        self.members.into_iter().map(move |(path, n)| {
            let m = Moments {
                exp_avg: self.exp_avg.clone().slice(at..at + n),
                exp_avg_sq: self.exp_avg_sq.clone().slice(at..at + n),
            };
            at += n;
            (path, m)
        })
    }
}

/// One parameter of a step: its path, whether it decays, its flattened value and gradient.
#[derive(Debug, Clone)]
pub struct Item {
    /// Module path (names its moments).
    pub path: String,
    /// Whether weight decay applies.
    pub decay: bool,
    /// The flattened value.
    pub value: Tensor<1>,
    /// The flattened gradient.
    pub grad: Tensor<1>,
}

/// A step's parameters gathered into flat groups (one per decay flag and dtype), from
/// [`AdamW::gather`]: the gradient norm is read from it before [`AdamW::apply`].
#[derive(Debug)]
pub struct Gathered {
    groups: Vec<GatheredGroup>,
    items: usize,
}

#[derive(Debug)]
struct GatheredGroup {
    decay: bool,
    /// (item index, path, elements) in order.
    members: Vec<(usize, String, usize)>,
    value: Tensor<1>,
    grad: Tensor<1>,
}

impl Gathered {
    /// Σ g² over every gradient in f32, one value per group (read back together by the
    /// caller).
    pub fn squares(&self) -> Vec<Tensor<1>> {
        self.groups
            .iter()
            .map(|g| g.grad.clone().cast(DType::F32).powi_scalar(2).sum())
            .collect()
    }
}

impl AdamW {
    /// A fresh optimizer.
    pub fn new(config: AdamWConfig) -> Self {
        Self {
            config,
            steps: 0,
            loose: BTreeMap::new(),
            groups: Vec::new(),
            group_elements: GROUP_ELEMENTS,
        }
    }

    /// The moments of every parameter that has any, by path (for checkpoints).
    pub fn state(&self) -> BTreeMap<String, Moments> {
        let mut out = self.loose.clone();
        for g in &self.groups {
            out.extend(g.clone().split());
        }
        out
    }

    /// Replaces the moments (a resumed run's).
    pub fn set_state(&mut self, state: BTreeMap<String, Moments>) {
        self.loose = state;
        self.groups.clear();
    }

    /// Concatenates `items` into flat groups (by decay flag and dtype, in the items' order, a
    /// new group where one would pass 2²⁶ elements).
    pub fn gather(&self, items: Vec<Item>) -> Gathered {
        let n = items.len();
        // (decay, dtype, elements, (item index, item) of the group's members).
        type Part = (bool, DType, usize, Vec<(usize, Item)>);
        let mut parts: Vec<Part> = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let (dtype, numel) = (item.value.dtype(), item.value.shape().num_elements());
            let cap = self.group_elements;
            match parts
                .iter_mut()
                .rev()
                .find(|(d, t, _, _)| *d == item.decay && *t == dtype)
                .filter(|(_, _, size, _)| size + numel <= cap)
            {
                Some((_, _, size, members)) => {
                    *size += numel;
                    members.push((i, item));
                }
                None => parts.push((item.decay, dtype, numel, vec![(i, item)])),
            }
        }
        let groups = parts
            .into_iter()
            .map(|(decay, _, _, members)| {
                let mut values = Vec::with_capacity(members.len());
                let mut grads = Vec::with_capacity(members.len());
                let mut index = Vec::with_capacity(members.len());
                for (i, item) in members {
                    index.push((i, item.path, item.value.shape().num_elements()));
                    values.push(item.value);
                    grads.push(item.grad);
                }
                GatheredGroup {
                    decay,
                    members: index,
                    value: cat(values),
                    grad: cat(grads),
                }
            })
            .collect();
        Gathered { groups, items: n }
    }

    /// One step over the gathered parameters, gradients scaled by `coef` (clipping; 1: none):
    /// the new values in the order the items were given.
    pub fn apply(&mut self, gathered: Gathered, coef: f64, lr: f64) -> Vec<Tensor<1>> {
        let mut out: Vec<Option<Tensor<1>>> = vec![None; gathered.items];
        let mut previous = std::mem::take(&mut self.groups);
        let mut groups = Vec::with_capacity(gathered.groups.len());
        for g in gathered.groups {
            let members: Vec<(String, usize)> =
                g.members.iter().map(|(_, p, n)| (p.clone(), *n)).collect();
            let (exp_avg, exp_avg_sq) = self.take_moments(&mut previous, &members, &g.grad);
            let grad = if coef < 1.0 {
                g.grad.mul_scalar(coef)
            } else {
                g.grad
            };
            let (value, moments) = self.step(g.decay, g.value, grad, exp_avg, exp_avg_sq, lr);
            let mut at = 0;
            for (i, _, n) in &g.members {
                out[*i] = Some(value.clone().slice(at..at + n));
                at += n;
            }
            groups.push(FlatMoments {
                members,
                exp_avg: moments.exp_avg,
                exp_avg_sq: moments.exp_avg_sq,
            });
        }
        // Groups this step did not update keep their moments, per path.
        for g in previous {
            self.loose.extend(g.split());
        }
        self.groups = groups;
        out.into_iter()
            .map(|v| v.expect("every item is in one group"))
            .collect()
    }

    /// The flat moments for `members`: the last step's group as it is when it had exactly
    /// these members, else each member's own (zeros for one without any yet), concatenated.
    fn take_moments(
        &mut self,
        previous: &mut Vec<FlatMoments>,
        members: &[(String, usize)],
        like: &Tensor<1>,
    ) -> (Tensor<1>, Tensor<1>) {
        if let Some(pos) = previous.iter().position(|g| g.members == members) {
            let g = previous.swap_remove(pos);
            return (g.exp_avg, g.exp_avg_sq);
        }
        // The set of parameters with gradients changed (a batch without images leaves the
        // tower without any): regroup from per-path moments. That copies every moment once,
        // on such steps only (and the cap's cut points may move for every later group).
        for g in std::mem::take(previous) {
            self.loose.extend(g.split());
        }
        let mut avg = Vec::with_capacity(members.len());
        let mut avg_sq = Vec::with_capacity(members.len());
        let mut at = 0;
        for (path, n) in members {
            match self.loose.remove(path) {
                Some(m) => {
                    avg.push(m.exp_avg);
                    avg_sq.push(m.exp_avg_sq);
                }
                None => {
                    let zeros = like.clone().slice(at..at + n).zeros_like();
                    avg.push(zeros.clone());
                    avg_sq.push(zeros);
                }
            }
            at += n;
        }
        (cat(avg), cat(avg_sq))
    }

    /// The update of one flat tensor (or one parameter): the new value and moments.
    fn step(
        &self,
        decay: bool,
        param: Tensor<1>,
        grad: Tensor<1>,
        exp_avg: Tensor<1>,
        exp_avg_sq: Tensor<1>,
        lr: f64,
    ) -> (Tensor<1>, Moments) {
        let c = self.config;
        let t = self.steps.max(1) as i32;
        let param = if decay && c.weight_decay != 0.0 {
            param.mul_scalar(1.0 - lr * c.weight_decay)
        } else {
            param
        };
        let exp_avg = exp_avg.clone() + (grad.clone() - exp_avg).mul_scalar(1.0 - c.beta1);
        let exp_avg_sq =
            exp_avg_sq.mul_scalar(c.beta2) + (grad.clone() * grad).mul_scalar(1.0 - c.beta2);
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2_sqrt = (1.0 - c.beta2.powi(t)).sqrt();
        let step_size = lr / bc1;
        let denom = exp_avg_sq
            .clone()
            .sqrt()
            .div_scalar(bc2_sqrt)
            .add_scalar(c.epsilon);
        let new = param - (exp_avg.clone() / denom).mul_scalar(step_size);
        (
            new,
            Moments {
                exp_avg,
                exp_avg_sq,
            },
        )
    }

    /// Counts one step; call once per optimizer step, before [`Self::apply`].
    pub fn begin_step(&mut self) {
        self.steps += 1;
    }
}

/// One tensor of `parts` end to end (the part itself when alone).
fn cat(mut parts: Vec<Tensor<1>>) -> Tensor<1> {
    if parts.len() == 1 {
        parts.remove(0)
    } else {
        Tensor::cat(parts, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn config(weight_decay: f64) -> AdamWConfig {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay,
        }
    }

    fn item(path: &str, decay: bool, value: &Tensor<1>, grad: Tensor<1>) -> Item {
        Item {
            path: path.into(),
            decay,
            value: value.clone(),
            grad,
        }
    }

    fn vec(t: &Tensor<1>) -> Vec<f32> {
        t.clone().into_data().try_into_vec::<f32>().unwrap()
    }

    /// Two steps of torch.optim.AdamW(lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
    /// on θ = [1, −2] with gradients [0.5, 0.25] then [−1, 2] (values printed by torch 2.8: [0.9177104, -2.1413467]).
    #[test]
    fn two_steps_match_torch() {
        let device = Device::flex();
        let t = |v: [f32; 2]| Tensor::<1>::from_data(TensorData::from(v), &device);
        let mut opt = AdamW::new(config(0.1));
        let mut p = t([1.0, -2.0]);
        for g in [[0.5, 0.25], [-1.0, 2.0]] {
            opt.begin_step();
            let gathered = opt.gather(vec![item("w", true, &p, t(g))]);
            p = opt.apply(gathered, 1.0, 0.1).remove(0);
        }
        let got = vec(&p);
        let expected = [0.917_710_4_f32, -2.141_346_7];
        for (g, e) in got.iter().zip(expected) {
            assert!((g - e).abs() < 1e-6, "{got:?} vs {expected:?}");
        }
    }

    /// Parameters updated together (two decay groups, clipping) equal each updated alone, bit
    /// for bit, also across a step where one has no gradient (its moments wait, as in torch)
    /// and across saving and restoring the state.
    #[test]
    fn flat_groups_equal_one_parameter_at_a_time() {
        // One group per decay flag, then groups cut at 3 elements ("a" alone, "c" alone, "d"
        // alone past the cap).
        for cap in [GROUP_ELEMENTS, 3] {
            flat_groups_with_cap(cap);
        }
    }

    fn flat_groups_with_cap(cap: usize) {
        let device = Device::flex();
        let t = |v: &[f32]| Tensor::<1>::from_data(TensorData::from(v), &device);
        let params = [
            ("a", true, vec![0.5f32, -1.0, 2.0]),
            ("b", false, vec![0.25f32]),
            ("c", true, vec![3.0f32, -0.75]),
            ("d", false, vec![-2.0f32, 1.5, 0.1, 0.2]),
        ];
        let grad = |step: usize, k: usize, n: usize| -> Tensor<1> {
            let v: Vec<f32> = (0..n)
                .map(|i| ((step * 7 + k * 3 + i) as f32 * 0.37).sin())
                .collect();
            t(&v)
        };
        let mut together = AdamW::new(config(0.1));
        together.group_elements = cap;
        let mut alone: Vec<AdamW> = params.iter().map(|_| AdamW::new(config(0.1))).collect();
        let mut flat_values: Vec<Tensor<1>> = params.iter().map(|p| t(&p.2)).collect();
        let mut alone_values = flat_values.clone();
        let coef = 0.5;
        for step in 0..4 {
            // At step 2, "c" has no gradient.
            let present: Vec<usize> = (0..params.len()).filter(|&k| step != 2 || k != 2).collect();
            together.begin_step();
            let items = present
                .iter()
                .map(|&k| {
                    let (path, decay, v) = &params[k];
                    item(path, *decay, &flat_values[k], grad(step, k, v.len()))
                })
                .collect();
            let gathered = together.gather(items);
            for (&k, new) in present.iter().zip(together.apply(gathered, coef, 0.01)) {
                flat_values[k] = new;
            }
            for &k in &present {
                let (path, decay, v) = &params[k];
                let opt = &mut alone[k];
                opt.begin_step();
                let gathered = opt.gather(vec![item(
                    path,
                    *decay,
                    &alone_values[k],
                    grad(step, k, v.len()),
                )]);
                alone_values[k] = opt.apply(gathered, coef, 0.01).remove(0);
            }
            if step == 1 {
                // Save and restore: the run goes on the same.
                let state = together.state();
                assert_eq!(state.len(), 4);
                together.set_state(state);
            }
        }
        assert_eq!(together.groups.len(), if cap == 3 { 4 } else { 2 });
        for k in 0..params.len() {
            if k == 2 {
                continue;
            }
            assert_eq!(
                vec(&flat_values[k]),
                vec(&alone_values[k]),
                "{}",
                params[k].0
            );
        }
        let state = together.state();
        for (k, (path, ..)) in params.iter().enumerate() {
            if k == 2 {
                continue;
            }
            let mine = &state[*path];
            let theirs = &alone[k].state()[*path];
            assert_eq!(vec(&mine.exp_avg), vec(&theirs.exp_avg), "{path}");
            assert_eq!(vec(&mine.exp_avg_sq), vec(&theirs.exp_avg_sq), "{path}");
        }
    }
}
