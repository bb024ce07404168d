use regex::Regex;

use crate::{CheckpointError, Result};

/// Ordered renaming rules from checkpoint keys to module paths.
///
/// Each rule is a regex and a replacement (`$1` refers to groups); every rule is applied in
/// order to every key. Keys that no rule touches keep their name, and those that match no module
/// parameter are reported as unused by [`crate::load_module`].
#[derive(Debug, Clone, Default)]
pub struct KeyMap {
    rules: Vec<(Regex, String)>,
}

impl KeyMap {
    /// A map that renames nothing.
    pub fn identity() -> Self {
        Self::default()
    }

    /// Builds a map from `(pattern, replacement)` pairs.
    pub fn new<P: AsRef<str>, R: Into<String>>(
        rules: impl IntoIterator<Item = (P, R)>,
    ) -> Result<Self> {
        let mut map = Self::default();
        for (pattern, replacement) in rules {
            map = map.with_rule(pattern.as_ref(), replacement)?;
        }
        Ok(map)
    }

    /// Appends one rule.
    pub fn with_rule(mut self, pattern: &str, replacement: impl Into<String>) -> Result<Self> {
        let regex = Regex::new(pattern).map_err(|e| CheckpointError::BadRule {
            pattern: pattern.to_string(),
            message: e.to_string(),
        })?;
        self.rules.push((regex, replacement.into()));
        Ok(self)
    }

    /// Appends the rules of `other` after these.
    pub fn then(mut self, other: &KeyMap) -> Self {
        self.rules.extend(other.rules.iter().cloned());
        self
    }

    /// The module path a checkpoint key maps to.
    pub fn map(&self, key: &str) -> String {
        let mut name = key.to_string();
        for (regex, replacement) in &self.rules {
            name = regex.replace_all(&name, replacement.as_str()).into_owned();
        }
        name
    }

    pub(crate) fn to_remapper(&self) -> burn::store::KeyRemapper {
        burn::store::KeyRemapper::from_compiled_patterns(self.rules.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_apply_in_order() {
        let map = KeyMap::new([
            (r"^language_model\.model\.", "model."),
            (r"^model\.language_model\.", "model."),
            (r"\.lora_A\.weight$", ".lora_a"),
        ])
        .unwrap();
        assert_eq!(
            map.map("language_model.model.norm.weight"),
            "model.norm.weight"
        );
        assert_eq!(
            map.map("model.language_model.layers.3.self_attn.q_proj.lora_A.weight"),
            "model.layers.3.self_attn.q_proj.lora_a"
        );
        assert_eq!(map.map("lm_head.weight"), "lm_head.weight");
    }

    #[test]
    fn bad_pattern_is_an_error_naming_it() {
        let err = KeyMap::new([("(", "x")]).unwrap_err();
        assert!(err.to_string().contains("\"(\""), "{err}");
    }
}
