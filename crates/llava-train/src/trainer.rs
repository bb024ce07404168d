//! The training loop (`../shared/spec/training.md` §1.2, with decision 10): per optimizer step,
//! `--gradient-accumulation-steps` micro-batches whose token losses are summed and divided by
//! the step's trained tokens, one global-norm clip (the norm logged before clipping), the
//! schedule's rate, one AdamW update; logs every `--logging-steps` (and step 1), evaluation and
//! a checkpoint every `--eval-steps` / `--save-steps` and at the end.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{Module, ParamId};
use burn::tensor::Tensor;
use indicatif::{ProgressBar, ProgressStyle};
use llava_data::rng::permutation;
use llava_data::{ImageCache, Sample};
use llava_model::{Layout, LlavaNext};
use llava_nn::{LoraConfig, LoraFactors};
use llava_vision::Processor;
use serde_json::{Value, json};

use crate::args::{SftArgs, SftType};
use crate::backward::{BackwardOptions, GradSums, forward_backward};
use crate::batch::Batch;
use crate::checkpoint::{self, ResumeState};
use crate::error::{Result, TrainError, io};
use crate::master::MasterWeights;
use crate::optim::{self, AdamW, AdamWConfig};
use crate::params::{Trainable, named_tensors, trainables, values, write_back};
use crate::schedule::Schedule;
use crate::targets::{peft_module_name, target_regex};

/// What one optimizer step measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepRecord {
    /// The step (1-based, `global_step` after it).
    pub step: usize,
    /// Σ token loss / trained tokens over the step's micro-batches.
    pub loss: f64,
    /// Trained tokens predicted right / trained tokens.
    pub acc: f64,
    /// The global gradient norm before clipping.
    pub grad_norm: f64,
    /// The rate the update used.
    pub lr: f64,
    /// Trained tokens of the step.
    pub tokens: usize,
    /// Seconds the step spent loading and tiling its images and laying out ids and labels
    /// (host work a data loader could overlap with the device's).
    pub prepare_s: f64,
}

/// One evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalRecord {
    /// After this optimizer step.
    pub step: usize,
    /// Mean over rows of each row's mean token loss.
    pub loss: f64,
    /// Tokens predicted right / tokens, over all rows.
    pub acc: f64,
}

/// Everything the loop needs that is not the model.
pub struct TrainerParts {
    /// The run's options (model fields filled in).
    pub args: SftArgs,
    /// Layout of the checkpoint trained (names in saved files).
    pub layout: Layout,
    /// The model's directory (config and tokenizer files are copied from it).
    pub model_dir: PathBuf,
    /// Image preprocessing of the model.
    pub processor: Processor,
    /// Where images come from.
    pub cache: ImageCache,
    /// Training samples.
    pub train: Vec<Sample>,
    /// Validation samples.
    pub validation: Vec<Sample>,
    /// The run directory.
    pub run_dir: PathBuf,
    /// End-of-sequence and padding ids for the saved generation config.
    pub eos_pad: (Option<u32>, Option<u32>),
    /// Module paths of the adapted layers (LoRA).
    pub lora_targets: Vec<String>,
    /// The resumed state, if any.
    pub resume: Option<(PathBuf, ResumeState)>,
    /// When the run began (before loading and encoding): `--stop-after-minutes` counts from it.
    pub started: Instant,
}

/// The loop's state.
pub struct Trainer {
    /// The model (on an autodiff device).
    pub model: LlavaNext,
    parts: TrainerParts,
    trainables: Vec<Trainable>,
    ids: Vec<ParamId>,
    optim: AdamW,
    schedule: Schedule,
    steps_per_epoch: usize,
    global_step: usize,
    history: Vec<Value>,
    best: Option<(f64, usize)>,
    checkpoints: Vec<usize>,
    source_keys: HashMap<String, String>,
    /// Per-step measurements.
    pub records: Vec<StepRecord>,
    /// Evaluations.
    pub evals: Vec<EvalRecord>,
    /// Seconds spent in each phase of the steps since the last log line.
    phases: PhaseTimes,
    /// f32 master weights of the half-precision parameters (`--master-f32`).
    masters: Option<MasterWeights>,
}

/// Where the time of the steps goes (wall clock on the host; the device runs behind it until a
/// value is read back: after each micro-batch's forward, for the per-row losses, and for the
/// gradient norm, which waits for the backward pass).
#[derive(Debug, Clone, Copy, Default)]
struct PhaseTimes {
    steps: usize,
    /// Images decoded and tiled, ids and labels laid out.
    prepare: f64,
    /// Forward and backward passes (with recompute they interleave layer by layer), the
    /// losses read back and the gradients accumulated.
    passes: f64,
    /// The gradient norm read back (waits for the backward pass) and the updates queued.
    update: f64,
}

impl PhaseTimes {
    fn report(&mut self) {
        let n = self.steps.max(1) as f64;
        let ms = |s: f64| (s / n * 1e4).round() / 10.0;
        tracing::info!(
            steps = self.steps,
            prepare_ms = ms(self.prepare),
            passes_ms = ms(self.passes),
            norm_update_ms = ms(self.update),
            "mean step time by phase"
        );
        *self = Self::default();
    }
}

/// Attaches fresh adapters (PEFT's initialisation, drawn from `seed`) to `targets`, after
/// freezing everything.
pub fn attach_lora(model: LlavaNext, args: &SftArgs, targets: &[String]) -> LlavaNext {
    let mut model = model.no_grad();
    let device = model.device();
    device.seed(args.seed);
    let scaling = if args.use_rslora {
        args.lora_alpha / (args.lora_rank as f64).sqrt()
    } else {
        args.lora_alpha / args.lora_rank as f64
    };
    for (path, layer) in model.linears_mut() {
        if targets.contains(&path) {
            let factors = LoraFactors::init(
                args.lora_rank,
                layer.d_input(),
                layer.d_output(),
                scaling,
                args.lora_dropout_p,
                &layer.weight.val().device(),
            );
            layer.attach(factors);
        }
    }
    model
}

/// Makes every weight of the LLM, the projector and `image_newline` train (the tower too
/// without `--freeze-vit`).
pub fn unfreeze_full(model: LlavaNext, freeze_vit: bool) -> LlavaNext {
    let mut model = model.no_grad();
    model.language_model = model.language_model.set_require_grad(true);
    model.multi_modal_projector = model.multi_modal_projector.set_require_grad(true);
    model.image_newline = model.image_newline.set_require_grad(true);
    if !freeze_vit {
        model.vision_tower = model.vision_tower.set_require_grad(true);
    }
    model
}

impl Trainer {
    /// A loop over `model`, whose trainable parameters are already chosen (adapters attached,
    /// or [`unfreeze_full`]).
    pub fn new(model: LlavaNext, parts: TrainerParts) -> Result<Self> {
        let args = &parts.args;
        let trainables = trainables(&model);
        if trainables.is_empty() {
            return Err(TrainError::Internal("no parameter trains".into()));
        }
        let ids = trainables.iter().map(|t| t.id).collect();
        let micro = parts.train.len().div_ceil(args.batch_size);
        let steps_per_epoch = micro.div_ceil(args.accumulation()).max(1);
        let total_steps = if args.max_steps > 0 {
            args.max_steps as usize
        } else {
            args.num_train_epochs * steps_per_epoch
        };
        let schedule = Schedule {
            kind: args.lr_scheduler_type,
            base_lr: args.lr(),
            total_steps,
            warmup_steps: Schedule::warmup(total_steps, args.warmup_ratio, args.warmup_steps),
        };
        let optim = AdamW::new(AdamWConfig {
            beta1: args.adam_beta1,
            beta2: args.adam_beta2,
            epsilon: args.adam_epsilon,
            weight_decay: args.weight_decay,
        });
        let source_keys = match args.sft_type {
            SftType::Full => checkpoint::source_keys(&parts.model_dir)?,
            SftType::Lora => HashMap::new(),
        };
        let masters = args.master_f32.then(MasterWeights::default);
        let mut trainer = Self {
            model,
            parts,
            trainables,
            ids,
            optim,
            schedule,
            steps_per_epoch,
            global_step: 0,
            history: Vec::new(),
            best: None,
            checkpoints: Vec::new(),
            source_keys,
            records: Vec::new(),
            evals: Vec::new(),
            phases: PhaseTimes::default(),
            masters,
        };
        trainer.restore()?;
        Ok(trainer)
    }

    /// The number of optimizer steps of the run.
    pub fn total_steps(&self) -> usize {
        self.schedule.total_steps
    }

    /// Optimizer steps done.
    pub fn global_step(&self) -> usize {
        self.global_step
    }

    /// Restores optimizer, schedule position and best checkpoint from a resumed state.
    fn restore(&mut self) -> Result<()> {
        let Some((dir, state)) = self.parts.resume.clone() else {
            return Ok(());
        };
        let bad = |message: String| TrainError::Resume {
            path: dir.clone(),
            message,
        };
        let ours: BTreeMap<String, Vec<usize>> = self
            .trainables
            .iter()
            .map(|t| (t.path.clone(), t.shape.clone()))
            .collect();
        if ours != state.trainables {
            return Err(bad(format!(
                "the checkpoint trained {} tensors, this run trains {} (other target modules or sft type?)",
                state.trainables.len(),
                ours.len()
            )));
        }
        if state.train_rows != self.parts.train.len() {
            return Err(bad(format!(
                "the checkpoint's run had {} training rows, this one has {}: the data must be the same to continue",
                state.train_rows,
                self.parts.train.len()
            )));
        }
        if state.global_step >= self.schedule.total_steps {
            return Err(bad(format!(
                "the checkpoint is at step {} and this run has {} steps: raise --max-steps or --num-train-epochs to continue",
                state.global_step, self.schedule.total_steps
            )));
        }
        let device = self.model.device().inner();
        let numel = self
            .trainables
            .iter()
            .map(|t| (t.path.clone(), t.numel()))
            .collect();
        let (moments, masters) = checkpoint::load_moments(&dir, &device, &numel)?;
        // Moments follow the gradients' dtype: f32 with masters, the parameter's without; a
        // resume that switched `--master-f32` would mix the two in one update.
        let half_moments = moments
            .values()
            .any(|m| m.exp_avg.dtype() != burn::tensor::DType::F32);
        match (self.masters.is_some(), masters.is_empty(), half_moments) {
            (false, false, _) => {
                return Err(bad(
                    "the checkpoint was trained with --master-f32: resume with it".into(),
                ));
            }
            (true, true, true) => {
                return Err(bad(
                    "the checkpoint was trained without --master-f32: resume without it".into(),
                ));
            }
            _ => {}
        }
        self.optim.set_state(moments);
        if self.masters.is_some() {
            self.masters = Some(MasterWeights::from_state(masters));
        }
        self.optim.steps = state.optimizer_steps;
        self.global_step = state.global_step;
        self.schedule.total_steps = state.total_steps;
        self.best = state
            .best_metric
            .zip(state.best_model_checkpoint.as_deref().and_then(step_of));
        let trainer_state: Value = checkpoint::read_json(&dir.join("trainer_state.json"))?;
        if let Some(h) = trainer_state["log_history"].as_array() {
            self.history = h.clone();
        }
        tracing::info!(step = state.global_step, from = %dir.display(), "resuming");
        Ok(())
    }

    /// The micro-batches (sample indices) of optimizer step `step` (0-based).
    fn micro_batches(&self, step: usize) -> Vec<Vec<usize>> {
        let n = self.parts.train.len();
        let bs = self.parts.args.batch_size;
        let ga = self.parts.args.accumulation();
        let epoch = step / self.steps_per_epoch;
        let within = step % self.steps_per_epoch;
        let order = permutation(n, self.parts.args.seed.wrapping_add(epoch as u64));
        let batches: Vec<Vec<usize>> = order.chunks(bs).map(<[usize]>::to_vec).collect();
        batches.into_iter().skip(within * ga).take(ga).collect()
    }

    /// Runs the remaining steps.
    pub fn run(&mut self) -> Result<()> {
        let total = self.schedule.total_steps;
        let started = Instant::now();
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "Train: {bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}",
            )
            .expect("valid template"),
        );
        bar.set_position(self.global_step as u64);
        let first = self.global_step;
        let mut since_log: Vec<StepRecord> = Vec::new();
        let mut tokens_seen = 0usize;
        while self.global_step < total {
            let record = self.step()?;
            tokens_seen += record.tokens;
            since_log.push(record);
            self.records.push(record);
            let step = self.global_step;
            let a = self.parts.args.clone();
            bar.set_position(step as u64);
            bar.set_message(format!("loss {:.4} acc {:.3}", record.loss, record.acc));
            if step.is_multiple_of(a.logging_steps) || step == 1 || step == total {
                let n = since_log.len() as f64;
                let secs = started.elapsed().as_secs_f64().max(1e-9);
                let line = json!({
                    "loss": round8(since_log.iter().map(|r| r.loss).sum::<f64>() / n),
                    "acc": round8(since_log.iter().map(|r| r.acc).sum::<f64>() / n),
                    "grad_norm": round8(record.grad_norm),
                    "learning_rate": round8(self.schedule.lr(step)),
                    "epoch": round8(step as f64 / self.steps_per_epoch as f64),
                    "global_step": step,
                    "train_speed(iter/s)": round8((step - first) as f64 / secs),
                    "tokens/s": round8(tokens_seen as f64 / secs),
                });
                since_log.clear();
                let mut line = line;
                if let Some(gib) = memory_gib(&self.model.device()) {
                    line["memory(GiB)"] = json!(round8(gib));
                }
                self.log(line)?;
                self.phases.report();
            }
            let evaluate = !self.parts.validation.is_empty()
                && (step.is_multiple_of(a.eval_steps) || step == total);
            if evaluate {
                self.evaluate()?;
            }
            let out_of_time = a
                .stop_after_minutes
                .is_some_and(|m| self.parts.started.elapsed().as_secs_f64() >= m * 60.0);
            if step.is_multiple_of(a.save_every()) || step == total || out_of_time {
                self.save()?;
            }
            if out_of_time && step < total {
                tracing::info!(
                    step,
                    total,
                    "time limit reached: stopped after a checkpoint"
                );
                break;
            }
        }
        bar.finish_and_clear();
        let secs = started.elapsed().as_secs_f64();
        let done = self.records.len().max(1) as f64;
        let summary = json!({
            "train_runtime": round8(secs),
            "train_steps_per_second": round8(self.records.len() as f64 / secs.max(1e-9)),
            "train_loss": round8(self.records.iter().map(|r| r.loss).sum::<f64>() / done),
            "epoch": round8(self.global_step as f64 / self.steps_per_epoch as f64),
            "global_step": self.global_step,
        });
        self.log(summary)?;
        let images = crate::plots::plot_history(&self.parts.run_dir, &self.history)?;
        tracing::info!(curves = images.len(), "training curves drawn");
        Ok(())
    }

    /// Elements that train.
    pub fn trainable_elements(&self) -> usize {
        self.trainables.iter().map(Trainable::numel).sum()
    }

    /// One optimizer step (forward, backward, clipping, AdamW), without the logging,
    /// evaluation and saving of [`Trainer::run`]: what a benchmark times.
    pub fn step(&mut self) -> Result<StepRecord> {
        let step = self.global_step;
        let clock = Instant::now();
        let micro = self.micro_batches(step);
        let batches = micro
            .iter()
            .map(|idx| {
                let samples: Vec<&Sample> = idx.iter().map(|&i| &self.parts.train[i]).collect();
                Batch::new(&samples, &self.parts.cache, &self.parts.processor)
            })
            .collect::<Result<Vec<_>>>()?;
        let prepare_s = clock.elapsed().as_secs_f64();
        self.phases.prepare += prepare_s;
        let tokens: usize = batches.iter().map(|b| b.tokens).sum();
        if tokens == 0 {
            return Err(TrainError::NoTrainedTokens);
        }
        let mut accumulated = GradSums::new();
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        for (m, batch) in batches.iter().enumerate() {
            let clock = Instant::now();
            let options = BackwardOptions {
                recompute: self.parts.args.gradient_checkpointing,
                loss_chunk_rows: None,
                seed: micro_seed(self.parts.args.seed, step, m),
            };
            let stats = forward_backward(
                &self.model,
                batch,
                tokens as f64,
                options,
                &self.ids,
                &mut accumulated,
            )?;
            loss_sum += stats.rows.iter().map(|r| r.0).sum::<f64>();
            correct += stats.correct;
            self.phases.passes += clock.elapsed().as_secs_f64();
        }
        let clock = Instant::now();
        let mut current = values(&self.model, &self.ids);
        let mut items = Vec::with_capacity(accumulated.len());
        let mut order = Vec::with_capacity(accumulated.len());
        for t in &self.trainables {
            let Some(grad) = accumulated.remove(&t.id) else {
                continue;
            };
            let value = current
                .remove(&t.id)
                .ok_or_else(|| TrainError::Internal(format!("no value for {}", t.path)))?;
            items.push(optim::Item {
                path: t.path.clone(),
                decay: t.decay,
                value,
                grad,
            });
            order.push(t.id);
        }
        // With masters, the optimizer sees f32 values and gradients (rounded back below).
        let mut widened = Vec::new();
        if let Some(masters) = &mut self.masters {
            items = items
                .into_iter()
                .map(|item| {
                    let path = item.path.clone();
                    let (item, dtype) = masters.widen(item);
                    widened.push((path, dtype));
                    item
                })
                .collect();
        }
        let gathered = self.optim.gather(items);
        // One read from the device for all the squares.
        let squares = gathered.squares();
        let norm = if squares.is_empty() {
            0.0
        } else {
            Tensor::cat(squares, 0)
                .into_data()
                .iter::<f32>()
                .map(f64::from)
                .sum::<f64>()
                .sqrt()
        };
        if !norm.is_finite() {
            return Err(TrainError::NonFinite {
                step: step + 1,
                norm,
            });
        }
        let max = self.parts.args.max_grad_norm;
        let coef = if max > 0.0 {
            (max / (norm + 1e-6)).min(1.0)
        } else {
            1.0
        };
        let lr = self.schedule.lr(step);
        self.optim.begin_step();
        let mut new_values = self.optim.apply(gathered, coef, lr);
        if let Some(masters) = &mut self.masters {
            new_values = new_values
                .into_iter()
                .zip(&widened)
                .map(|(v, (path, dtype))| masters.narrow(path, v, *dtype))
                .collect();
        }
        let updates: HashMap<ParamId, Tensor<1>> = order.into_iter().zip(new_values).collect();
        // The clone shares the tensors; the old values go when the new ones are written.
        self.model = write_back(self.model.clone(), updates);
        self.phases.update += clock.elapsed().as_secs_f64();
        self.phases.steps += 1;
        self.global_step += 1;
        Ok(StepRecord {
            step: self.global_step,
            loss: loss_sum / tokens as f64,
            acc: correct as f64 / tokens as f64,
            grad_norm: norm,
            lr,
            tokens,
            prepare_s,
        })
    }

    /// Evaluates on the validation samples (no graph, no dropout).
    pub fn evaluate(&mut self) -> Result<EvalRecord> {
        let started = Instant::now();
        let model = self.model.valid();
        let bs = self.parts.args.eval_batch();
        let (mut mean_sum, mut rows, mut correct, mut tokens) = (0.0, 0usize, 0usize, 0usize);
        for chunk in self.parts.validation.chunks(bs) {
            let samples: Vec<&Sample> = chunk.iter().collect();
            let batch = Batch::new(&samples, &self.parts.cache, &self.parts.processor)?;
            let parts = batch.loss(&model)?;
            for (s, n) in &parts.stats.rows {
                if *n > 0 {
                    mean_sum += s / *n as f64;
                    rows += 1;
                }
            }
            correct += parts.stats.correct;
            tokens += parts.stats.tokens;
        }
        let record = EvalRecord {
            step: self.global_step,
            loss: mean_sum / rows.max(1) as f64,
            acc: correct as f64 / tokens.max(1) as f64,
        };
        let secs = started.elapsed().as_secs_f64();
        self.log(json!({
            "eval_loss": round8(record.loss),
            "eval_acc": round8(record.acc),
            "eval_runtime": round8(secs),
            "eval_samples_per_second": round8(self.parts.validation.len() as f64 / secs.max(1e-9)),
            "epoch": round8(self.global_step as f64 / self.steps_per_epoch as f64),
            "global_step": self.global_step,
        }))?;
        if self.best.is_none_or(|(b, _)| record.loss < b) {
            self.best = Some((record.loss, self.global_step));
        }
        self.evals.push(record);
        Ok(record)
    }

    /// Appends a line to `logging.jsonl` and the log history.
    fn log(&mut self, line: Value) -> Result<()> {
        use std::io::Write;
        tracing::info!("{line}");
        let path = self.parts.run_dir.join("logging.jsonl");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        writeln!(f, "{line}").map_err(io(&path))?;
        self.history.push(line);
        Ok(())
    }

    /// The directory of the checkpoint of `step`.
    pub fn checkpoint_dir(&self, step: usize) -> PathBuf {
        self.parts.run_dir.join(format!("checkpoint-{step}"))
    }

    /// The latest checkpoint written.
    pub fn last_checkpoint(&self) -> Option<PathBuf> {
        self.checkpoints.last().map(|&s| self.checkpoint_dir(s))
    }

    /// The checkpoint with the lowest evaluation loss.
    pub fn best_checkpoint(&self) -> Option<PathBuf> {
        self.best.map(|(_, s)| self.checkpoint_dir(s))
    }

    /// Writes `checkpoint-<global_step>/` atomically, then rotates old ones.
    pub fn save(&mut self) -> Result<PathBuf> {
        let step = self.global_step;
        let dir = self.checkpoint_dir(step);
        let tmp = checkpoint::temporary_dir(&dir);
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        self.write_checkpoint(&tmp)?;
        checkpoint::commit(&tmp, &dir)?;
        self.checkpoints.push(step);
        let best = self.best.map(|(_, s)| s);
        for old in checkpoint::rotation(&self.checkpoints, best, self.parts.args.save_total_limit) {
            let path = self.checkpoint_dir(old);
            std::fs::remove_dir_all(&path).map_err(io(&path))?;
            self.checkpoints.retain(|&s| s != old);
        }
        tracing::info!(checkpoint = %dir.display(), "saved");
        Ok(dir)
    }

    fn write_checkpoint(&mut self, dir: &Path) -> Result<()> {
        let args = self.parts.args.clone();
        let layout = self.parts.layout;
        let model_dir = self.parts.model_dir.clone();
        match args.sft_type {
            SftType::Lora => {
                let names: Vec<String> = self
                    .parts
                    .lora_targets
                    .iter()
                    .map(|p| peft_module_name(p, layout))
                    .collect();
                let config = lora_config(&args, &names, &model_dir);
                let targets = self.parts.lora_targets.clone();
                let layers: Vec<(String, &llava_nn::Linear)> = self
                    .model
                    .linears_mut()
                    .into_iter()
                    .filter(|(p, _)| targets.contains(p))
                    .map(|(p, l)| (peft_module_name(&p, layout), &*l))
                    .collect();
                llava_nn::lora::save_adapter(dir, &config, layers)?;
            }
            SftType::Full => {
                let tensors: Vec<_> = named_tensors(&self.model)
                    .into_iter()
                    .map(|(p, d)| (checkpoint::python_key(&p, layout, &self.source_keys), d))
                    .collect();
                checkpoint::save_sharded(dir, tensors, 5 << 30)?;
                checkpoint::copy_model_files(&model_dir, dir)?;
            }
        }
        let adapter_cfg = (args.sft_type == SftType::Lora).then(|| {
            json!({
                "model_id_or_path": args.model_id_or_path,
                "model_revision": Value::Null,
                "sft_type": "lora",
                "tuner_backend": "peft",
                "template_type": args.template_type,
                "dtype": args.dtype,
                "system": args.system,
            })
        });
        checkpoint::write_json(
            &dir.join("configuration.json"),
            &checkpoint::configuration_json(&model_dir, adapter_cfg),
        )?;
        checkpoint::write_json(&dir.join("sft_args.json"), &args)?;
        let (eos, pad) = self.parts.eos_pad;
        checkpoint::write_json(
            &dir.join("generation_config.json"),
            &checkpoint::swift_generation_config(eos, pad),
        )?;
        let best_dir = self
            .best
            .map(|(_, s)| self.checkpoint_dir(s).display().to_string());
        checkpoint::write_json(
            &dir.join("trainer_state.json"),
            &json!({
                "best_metric": self.best.map(|(m, _)| m),
                "best_model_checkpoint": best_dir,
                "epoch": self.global_step as f64 / self.steps_per_epoch as f64,
                "global_step": self.global_step,
                "max_steps": self.schedule.total_steps,
                "num_train_epochs": args.num_train_epochs,
                "logging_steps": args.logging_steps,
                "eval_steps": args.eval_steps,
                "save_steps": args.save_every(),
                "train_batch_size": args.batch_size,
                "is_local_process_zero": true,
                "is_world_process_zero": true,
                "log_history": self.history,
            }),
        )?;
        let no_masters = BTreeMap::new();
        let masters = self
            .masters
            .as_ref()
            .map_or(&no_masters, MasterWeights::state);
        checkpoint::save_moments(dir, &self.optim.state(), masters)?;
        let state = ResumeState {
            format: 1,
            model_type: args.model_type.clone(),
            sft_type: args.sft_type,
            global_step: self.global_step,
            total_steps: self.schedule.total_steps,
            optimizer_steps: self.optim.steps,
            train_rows: self.parts.train.len(),
            trainables: self
                .trainables
                .iter()
                .map(|t| (t.path.clone(), t.shape.clone()))
                .collect(),
            lora_targets: self.parts.lora_targets.clone(),
            best_metric: self.best.map(|(m, _)| m),
            best_model_checkpoint: best_dir,
        };
        checkpoint::write_json(&dir.join(checkpoint::STATE_FILE), &state)
    }
}

/// The PEFT config of the run's adapters.
pub fn lora_config(args: &SftArgs, peft_names: &[String], model_dir: &Path) -> LoraConfig {
    serde_json::from_value(json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": args.model_id_or_path.clone().unwrap_or_else(|| model_dir.display().to_string()),
        "r": args.lora_rank,
        "lora_alpha": args.lora_alpha,
        "lora_dropout": args.lora_dropout_p,
        "target_modules": target_regex(peft_names),
        "bias": "none",
        "use_rslora": args.use_rslora,
        "use_dora": false,
        "fan_in_fan_out": false,
        "init_lora_weights": true,
        "inference_mode": true,
        "modules_to_save": null,
    }))
    .expect("a valid LoRA config")
}

/// The step of a `checkpoint-<step>` path.
/// The dropout seed of micro-batch `micro` of step `step` (0-based): it depends on the run's
/// seed and the position only, so a resumed run draws the same.
fn micro_seed(seed: u64, step: usize, micro: usize) -> u64 {
    seed.wrapping_add(1 + step as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((micro as u64) << 32)
}

fn step_of(path: &str) -> Option<usize> {
    Path::new(path)
        .file_name()?
        .to_str()?
        .strip_prefix("checkpoint-")?
        .parse()
        .ok()
}

/// `memory(GiB)` of the log: on a GPU the memory its allocator holds (reserved pages, which it
/// keeps once taken, so the step's peak; ms-swift logs the GPUs' peak reserved memory), on the
/// CPU the process's peak resident memory.
fn memory_gib(device: &burn::tensor::Device) -> Option<f64> {
    match device.memory_pool_usage() {
        Some(u) => Some(u.bytes_reserved as f64 / (1u64 << 30) as f64),
        None => peak_memory_gib(),
    }
}

/// The process's peak resident memory in GiB (Linux `VmHWM`).
pub fn peak_memory_gib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / (1024.0 * 1024.0))
}

fn round8(x: f64) -> f64 {
    (x * 1e8).round() / 1e8
}
