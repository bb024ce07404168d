//! The trainable parameters of a module by path, their gradients, and updates written back.
//! Every tensor is handled flattened to one dimension, so the optimizer is written once for
//! every rank.

use std::collections::{HashMap, HashSet};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{Gradients, Tensor, TensorData};

/// One parameter that trains.
#[derive(Debug, Clone, PartialEq)]
pub struct Trainable {
    /// Module path, e.g. `language_model.model.layers.0.self_attn.q_proj.lora.lora_a`.
    pub path: String,
    /// burn's id (stable while the module lives, not across runs: paths name state on disk).
    pub id: ParamId,
    /// The tensor's shape.
    pub shape: Vec<usize>,
    /// Whether weight decay applies (decision 12: not to biases and norm weights).
    pub decay: bool,
}

impl Trainable {
    /// Elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Containers whose weights are never decayed.
const NORMS: &[&str] = &["Struct:RmsNorm", "Struct:LayerNorm"];

/// Every parameter of `module` that requires a gradient, in visiting order.
pub fn trainables<M: Module>(module: &M) -> Vec<Trainable> {
    let mut v = Walker::default();
    module.visit(&mut v);
    v.out
}

/// Every float parameter of `module` with its path (trainable or not), as host data.
pub fn named_tensors<M: Module>(module: &M) -> Vec<(String, TensorData)> {
    let mut v = Exporter::default();
    module.visit(&mut v);
    v.out
}

#[derive(Default)]
struct Walker {
    stack: Vec<(String, String)>,
    out: Vec<Trainable>,
}

impl Walker {
    fn path(&self) -> String {
        self.stack
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(".")
    }
}

impl ModuleVisitor for Walker {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack
            .push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        if !value.is_require_grad() {
            return;
        }
        let (name, owner) = self
            .stack
            .last()
            .map(|(n, c)| (n.as_str(), c.as_str()))
            .unwrap_or(("", ""));
        let decay = name != "bias" && !NORMS.contains(&owner);
        self.out.push(Trainable {
            path: self.path(),
            id: param.id,
            shape: value.dims().to_vec(),
            decay,
        });
    }
}

#[derive(Default)]
struct Exporter {
    stack: Vec<String>,
    out: Vec<(String, TensorData)>,
}

impl ModuleVisitor for Exporter {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.stack.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.out
            .push((self.stack.join("."), param.val().inner().into_data()));
    }
}

/// The gradients of `ids` in `grads`, flattened, by id (inner-backend tensors). Parameters
/// the loss did not reach are absent.
pub fn gradients<M: Module>(
    module: &M,
    grads: &Gradients,
    ids: &[ParamId],
) -> HashMap<ParamId, Tensor<1>> {
    struct Grabber<'a> {
        grads: &'a Gradients,
        ids: HashSet<ParamId>,
        out: HashMap<ParamId, Tensor<1>>,
    }
    impl ModuleVisitor for Grabber<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if !self.ids.contains(&param.id) {
                return;
            }
            if let Some(g) = param.val().grad(self.grads) {
                let n = g.shape().num_elements();
                self.out.insert(param.id, g.reshape([n]));
            }
        }
    }
    let mut v = Grabber {
        grads,
        ids: ids.iter().copied().collect(),
        out: HashMap::new(),
    };
    module.visit(&mut v);
    v.out
}

/// The current values of `ids`, flattened (inner-backend tensors, detached).
pub fn values<M: Module>(module: &M, ids: &[ParamId]) -> HashMap<ParamId, Tensor<1>> {
    struct Reader {
        ids: HashSet<ParamId>,
        out: HashMap<ParamId, Tensor<1>>,
    }
    impl ModuleVisitor for Reader {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if self.ids.contains(&param.id) {
                let v = param.val().inner();
                let n = v.shape().num_elements();
                self.out.insert(param.id, v.reshape([n]));
            }
        }
    }
    let mut v = Reader {
        ids: ids.iter().copied().collect(),
        out: HashMap::new(),
    };
    module.visit(&mut v);
    v.out
}

/// `module` with each parameter of `updates` replaced by its new value (flattened, inner
/// backend), still requiring a gradient, with the same id.
pub fn write_back<M: Module>(module: M, updates: HashMap<ParamId, Tensor<1>>) -> M {
    struct Writer {
        updates: HashMap<ParamId, Tensor<1>>,
    }
    impl ModuleMapper for Writer {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let Some(new) = self.updates.remove(&param.id) else {
                return param;
            };
            let (id, old, mapper) = param.consume();
            let shape = old.shape();
            let value = Tensor::<D>::from_inner(new.reshape(shape)).require_grad();
            Param::from_mapped_value(id, value, mapper)
        }
    }
    module.map(&mut Writer { updates })
}
