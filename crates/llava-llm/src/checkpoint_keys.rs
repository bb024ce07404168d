use llava_checkpoint::KeyMap;

/// Checkpoint key → module path renames for the decoder, for every layout LLaVA checkpoints
/// use (spec §6):
/// - plain decoders and original LLaVA: `model.layers.*`, `lm_head.weight` (kept);
/// - llava-hf hub files (transformers < 4.52): `language_model.model.*`,
///   `language_model.lm_head.weight`;
/// - transformers ≥ 4.52 in memory / some saved files: `model.language_model.*`, `lm_head.weight`.
///
/// The vision tower, projector and `image_newline` keys pass through unchanged and are left
/// unused by the decoder. The same rules map PEFT adapter module names.
pub fn decoder_key_map() -> KeyMap {
    KeyMap::new([
        (r"^language_model\.model\.", "model."),
        (r"^model\.language_model\.", "model."),
        (r"^language_model\.lm_head\.", "lm_head."),
    ])
    .expect("static patterns are valid")
}

/// Whether a (mapped) key belongs to the decoder, so that an unused one means the checkpoint
/// and the configuration disagree (e.g. more layers than `num_hidden_layers`).
pub(crate) fn is_decoder_key(key: &str) -> bool {
    [
        "model.layers.",
        "model.embed_tokens.",
        "model.norm.",
        "lm_head.",
    ]
    .iter()
    .any(|p| key.starts_with(p))
        && !key.ends_with("rotary_emb.inv_freq")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layout_maps_to_the_same_paths() {
        let map = decoder_key_map();
        for key in [
            "model.layers.3.mlp.up_proj.weight",
            "language_model.model.layers.3.mlp.up_proj.weight",
            "model.language_model.layers.3.mlp.up_proj.weight",
        ] {
            assert_eq!(map.map(key), "model.layers.3.mlp.up_proj.weight");
        }
        assert_eq!(map.map("language_model.lm_head.weight"), "lm_head.weight");
        assert_eq!(
            map.map("model.mm_projector.0.weight"),
            "model.mm_projector.0.weight"
        );
        assert!(!is_decoder_key("model.mm_projector.0.weight"));
        assert!(!is_decoder_key(
            "model.vision_tower.vision_tower.vision_model.post_layernorm.weight"
        ));
        assert!(is_decoder_key("model.layers.40.self_attn.q_proj.weight"));
    }
}
