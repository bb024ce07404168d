//! Which linears get adapters (`--lora-target-modules`, decision 4), and the module names PEFT
//! gives them in the Python model of each checkpoint layout.

use std::collections::BTreeSet;

use llava_model::Layout;

use crate::error::{Result, TrainError};

const LLM: &str = "language_model.model.";
const PROJECTOR: &str = "multi_modal_projector.";
const TOWER: &str = "vision_tower.";

/// The module paths (of `all`, the model's linears) that `spec` selects:
/// - `DEFAULT`: `default_names` (the model type's, q/k/v) in the LLM only;
/// - `ALL`: every linear of the LLM and the projector (not `lm_head`), and of the vision tower
///   when it trains (`freeze_vit` false);
/// - a name: every trainable linear whose path ends with it (PEFT's suffix rule).
///
/// A name that selects nothing is an error listing the names there are.
pub fn select_targets(
    all: &[String],
    spec: &[String],
    default_names: &[&str],
    freeze_vit: bool,
) -> Result<Vec<String>> {
    let trainable = |p: &str| {
        p.starts_with(LLM) || p.starts_with(PROJECTOR) || (!freeze_vit && p.starts_with(TOWER))
    };
    let mut chosen = BTreeSet::new();
    for item in spec.iter().flat_map(|s| s.split(',')).map(str::trim) {
        match item {
            "" => {}
            "DEFAULT" | "AUTO" => {
                for p in all.iter().filter(|p| p.starts_with(LLM)) {
                    if default_names.iter().any(|n| ends_with_name(p, n)) {
                        chosen.insert(p.clone());
                    }
                }
            }
            "ALL" => chosen.extend(all.iter().filter(|p| trainable(p)).cloned()),
            name => {
                let hits: Vec<&String> = all
                    .iter()
                    .filter(|p| trainable(p) && ends_with_name(p, name))
                    .collect();
                if hits.is_empty() {
                    let names: BTreeSet<&str> = all
                        .iter()
                        .filter(|p| trainable(p))
                        .filter_map(|p| p.rsplit('.').next())
                        .collect();
                    return Err(TrainError::Args(format!(
                        "--lora-target-modules {name}: no trainable linear layer is named so (there are: DEFAULT, ALL, {}{})",
                        names.into_iter().collect::<Vec<_>>().join(", "),
                        if freeze_vit {
                            "; the vision tower's need --freeze-vit false"
                        } else {
                            ""
                        }
                    )));
                }
                chosen.extend(hits.into_iter().cloned());
            }
        }
    }
    if chosen.is_empty() {
        return Err(TrainError::Args(
            "--lora-target-modules selects no layer".into(),
        ));
    }
    // Keep the model's order.
    Ok(all
        .iter()
        .filter(|p| chosen.contains(*p))
        .cloned()
        .collect())
}

fn ends_with_name(path: &str, name: &str) -> bool {
    path == name || path.ends_with(&format!(".{name}"))
}

/// The module name PEFT gives the layer at `path` when it wraps the Python model of `layout`:
/// transformers ≥ 4.52 `LlavaNextForConditionalGeneration` (`model.language_model.layers.0…`,
/// `model.multi_modal_projector.linear_1`, `model.vision_tower.encoder…`, `lm_head`), or the
/// original LLaVA classes (`model.layers.0…`, `model.mm_projector.0`,
/// `model.vision_tower.vision_tower.vision_model…`).
pub fn peft_module_name(path: &str, layout: Layout) -> String {
    match layout {
        Layout::LlavaHf => {
            if let Some(rest) = path.strip_prefix(LLM) {
                format!("model.language_model.{rest}")
            } else if let Some(rest) = path.strip_prefix("language_model.lm_head") {
                format!("lm_head{rest}")
            } else if let Some(rest) = path.strip_prefix("vision_tower.vision_model.") {
                format!("model.vision_tower.{rest}")
            } else {
                format!("model.{path}")
            }
        }
        Layout::Original => original_name(path),
    }
}

/// The name of a module or tensor path in the original LLaVA classes (the same in memory and in
/// their files).
pub fn original_name(path: &str) -> String {
    if let Some(rest) = path.strip_prefix(LLM) {
        format!("model.{rest}")
    } else if let Some(rest) = path.strip_prefix("language_model.lm_head") {
        format!("lm_head{rest}")
    } else if let Some(rest) = path.strip_prefix("multi_modal_projector.linear_1") {
        format!("model.mm_projector.0{rest}")
    } else if let Some(rest) = path.strip_prefix("multi_modal_projector.linear_2") {
        format!("model.mm_projector.2{rest}")
    } else if let Some(rest) = path.strip_prefix(TOWER) {
        format!("model.vision_tower.vision_tower.{rest}")
    } else {
        format!("model.{path}")
    }
}

/// `adapter_config.json`'s `target_modules` for the adapted `names` (PEFT names): one regex
/// that matches exactly them, layer indices (after `layers.`) generalised, so PEFT wraps these
/// layers and no other (a list of suffixes would also wrap the frozen tower's q/k/v).
pub fn target_regex(names: &[String]) -> String {
    let mut patterns = BTreeSet::new();
    for n in names {
        let pieces: Vec<&str> = n.split('.').collect();
        let parts: Vec<String> = pieces
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let index = !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
                if index && i > 0 && pieces[i - 1] == "layers" {
                    r"\d+".to_string()
                } else {
                    p.to_string()
                }
            })
            .collect();
        patterns.insert(parts.join(r"\."));
    }
    patterns.into_iter().collect::<Vec<_>>().join("|")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths() -> Vec<String> {
        let mut v = Vec::new();
        for l in 0..2 {
            for p in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                v.push(format!(
                    "vision_tower.vision_model.encoder.layers.{l}.self_attn.{p}"
                ));
            }
        }
        v.push("multi_modal_projector.linear_1".into());
        v.push("multi_modal_projector.linear_2".into());
        for l in 0..2 {
            for p in [
                "self_attn.q_proj",
                "self_attn.k_proj",
                "self_attn.v_proj",
                "self_attn.o_proj",
                "mlp.gate_proj",
                "mlp.up_proj",
                "mlp.down_proj",
            ] {
                v.push(format!("language_model.model.layers.{l}.{p}"));
            }
        }
        v.push("language_model.lm_head".into());
        v
    }

    #[test]
    fn default_is_the_llm_qkv_and_all_leaves_the_frozen_tower_and_the_head() {
        let all = paths();
        let qkv = ["q_proj", "k_proj", "v_proj"];
        let d = select_targets(&all, &["DEFAULT".into()], &qkv, true).unwrap();
        assert_eq!(d.len(), 6);
        assert!(
            d.iter()
                .all(|p| p.starts_with("language_model.model.layers."))
        );
        let a = select_targets(&all, &["ALL".into()], &qkv, true).unwrap();
        assert_eq!(a.len(), 2 + 14);
        assert!(
            !a.iter()
                .any(|p| p.contains("lm_head") || p.starts_with("vision_tower"))
        );
        let unfrozen = select_targets(&all, &["ALL".into()], &qkv, false).unwrap();
        assert_eq!(unfrozen.len(), 8 + 2 + 14);
        let named = select_targets(&all, &["o_proj,linear_1".into()], &qkv, true).unwrap();
        assert_eq!(named.len(), 3);
        let e = select_targets(&all, &["qkv".into()], &qkv, true)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("qkv") && e.contains("down_proj") && e.contains("--freeze-vit false"),
            "{e}"
        );
    }

    #[test]
    fn peft_names_of_both_layouts_and_the_regex() {
        let p = "language_model.model.layers.0.self_attn.q_proj";
        assert_eq!(
            peft_module_name(p, Layout::LlavaHf),
            "model.language_model.layers.0.self_attn.q_proj"
        );
        assert_eq!(
            peft_module_name(p, Layout::Original),
            "model.layers.0.self_attn.q_proj"
        );
        assert_eq!(
            peft_module_name("multi_modal_projector.linear_2", Layout::Original),
            "model.mm_projector.2"
        );
        assert_eq!(
            peft_module_name("multi_modal_projector.linear_2", Layout::LlavaHf),
            "model.multi_modal_projector.linear_2"
        );
        let names: Vec<String> = [
            "model.layers.0.self_attn.q_proj",
            "model.layers.1.self_attn.q_proj",
            "model.mm_projector.0",
        ]
        .map(String::from)
        .to_vec();
        let re = target_regex(&names);
        assert_eq!(
            re,
            r"model\.layers\.\d+\.self_attn\.q_proj|model\.mm_projector\.0"
        );
        let config: llava_nn::LoraConfig = serde_json::from_value(serde_json::json!({
            "r": 8, "target_modules": re
        }))
        .unwrap();
        assert!(config.matches("model.layers.7.self_attn.q_proj"));
        assert!(!config.matches(
            "model.vision_tower.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj"
        ));
    }
}
