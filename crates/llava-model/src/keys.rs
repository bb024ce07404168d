//! Checkpoint key → module path, for every layout (spec §2.3, §3.1, §6). Module paths follow
//! the llava-hf hub files, so those load unchanged:
//! `vision_tower.vision_model.*`, `multi_modal_projector.linear_{1,2}.*`, `image_newline`,
//! `language_model.model.*`, `language_model.lm_head.*`.

use llava_checkpoint::KeyMap;

/// Rules are applied in order, each to the previous result.
pub fn llava_key_map() -> KeyMap {
    KeyMap::new([
        // original LLaVA
        (r"^model\.vision_tower\.vision_tower\.", "vision_tower."),
        (
            r"^model\.mm_projector\.0\.",
            "multi_modal_projector.linear_1.",
        ),
        (
            r"^model\.mm_projector\.2\.",
            "multi_modal_projector.linear_2.",
        ),
        (
            r"^model\.(embed_tokens|layers|norm)\.",
            "language_model.model.${1}.",
        ),
        // transformers ≥ 4.52 in-memory names (and files saved from them)
        (r"^model\.vision_tower\.", "vision_tower."),
        (r"^model\.multi_modal_projector\.", "multi_modal_projector."),
        (r"^model\.language_model\.", "language_model.model."),
        (r"^model\.image_newline$", "image_newline"),
        (r"^lm_head\.", "language_model.lm_head."),
        // transformers 5 saves the tower without its `vision_model.` level
        (
            r"^vision_tower\.(embeddings|encoder|pre_layrnorm|post_layernorm|head)\.",
            "vision_tower.vision_model.${1}.",
        ),
    ])
    .expect("static patterns are valid")
}

/// Keys a checkpoint may carry that no module needs: buffers, CLIP's text-side leftovers and
/// SigLIP's pooling head (LLaVA never uses it).
pub fn ignorable(key: &str) -> bool {
    key.ends_with(".position_ids")
        || key.ends_with("rotary_emb.inv_freq")
        || key.starts_with("vision_tower.vision_model.head.")
        || key == "vision_tower.logit_scale"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layout_maps_to_the_hub_paths() {
        let map = llava_key_map();
        let cases = [
            (
                "model.vision_tower.vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight",
                "vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight",
            ),
            (
                "model.vision_tower.vision_model.post_layernorm.bias",
                "vision_tower.vision_model.post_layernorm.bias",
            ),
            (
                "vision_tower.vision_model.embeddings.class_embedding",
                "vision_tower.vision_model.embeddings.class_embedding",
            ),
            (
                "model.mm_projector.0.weight",
                "multi_modal_projector.linear_1.weight",
            ),
            (
                "model.mm_projector.2.bias",
                "multi_modal_projector.linear_2.bias",
            ),
            (
                "model.multi_modal_projector.linear_2.bias",
                "multi_modal_projector.linear_2.bias",
            ),
            ("model.image_newline", "image_newline"),
            ("image_newline", "image_newline"),
            (
                "model.layers.1.self_attn.q_proj.weight",
                "language_model.model.layers.1.self_attn.q_proj.weight",
            ),
            (
                "model.embed_tokens.weight",
                "language_model.model.embed_tokens.weight",
            ),
            ("model.norm.weight", "language_model.model.norm.weight"),
            ("lm_head.weight", "language_model.lm_head.weight"),
            (
                "model.language_model.layers.0.mlp.up_proj.weight",
                "language_model.model.layers.0.mlp.up_proj.weight",
            ),
            (
                "language_model.model.layers.0.mlp.up_proj.weight",
                "language_model.model.layers.0.mlp.up_proj.weight",
            ),
            (
                "language_model.lm_head.weight",
                "language_model.lm_head.weight",
            ),
            (
                "model.vision_tower.encoder.layers.0.mlp.fc1.bias",
                "vision_tower.vision_model.encoder.layers.0.mlp.fc1.bias",
            ),
        ];
        for (key, path) in cases {
            assert_eq!(map.map(key), path, "{key}");
        }
    }
}
