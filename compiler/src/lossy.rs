//! `--lossy` rules: which tensors get which lossy setting.
//!
//! A rule list is comma-separated items, each `PATTERN=SETTING` or
//! `preset:NAME` (replaced by the preset's rules, in place). The first rule
//! whose pattern matches a tensor's whole name decides; a tensor no rule
//! matches stays lossless. Patterns are globs: `*` matches any run of
//! characters (`.` included), `?` any one character, everything else itself,
//! case-sensitively. Settings:
//! - `lossless`;
//! - `mantissa:K`: round to K mantissa bits (ties to even), pointwise
//!   relative error at most `2^-(K+1)` (codec 2);
//! - `abs:EB`: absolute error at most EB (codec 3);
//! - `rel:EB`: pointwise relative error at most EB, `0 < EB < 1` (codec 3).
//!
//! Lossy settings apply only to BF16, F16 and F32 tensors; tensors of other
//! dtypes stay lossless whatever the rules say.

use std::fmt;

use tic_format::codec::LossySetting;
use tic_format::DType;

/// Largest K `mantissa:K` accepts (F32 has 23 mantissa bits; K at or above
/// a dtype's own mantissa width leaves that tensor lossless).
pub const MAX_MANTISSA_K: u8 = 23;

/// The built-in presets: (name, rules, what it is for).
pub const PRESETS: &[(&str, &str, &str)] = &[
    (
        "safe",
        "*norm*=lossless,*Norm*=lossless,*ln_*=lossless,*.bias=lossless,*embed*=lossless,\
         *wte*=lossless,*wpe*=lossless,*lm_head*=lossless,*.weight=mantissa:4",
        "norms, biases, embeddings and output heads lossless; other weight matrices \
         rounded to 4 mantissa bits (pointwise relative error <= 2^-5 = 3.1%, about 1.1% \
         on average); mean embedding cosine similarity >= 0.999 on all-MiniLM-L6-v2",
    ),
    (
        "small",
        "*norm*=lossless,*Norm*=lossless,*ln_*=lossless,*.bias=lossless,*embed*=lossless,\
         *wte*=lossless,*wpe*=lossless,*lm_head*=lossless,*.weight=mantissa:3",
        "like safe with 3 mantissa bits (pointwise relative error <= 2^-4 = 6.25%): \
         smaller, for models checked to tolerate it (mean embedding cosine 0.998 on \
         all-MiniLM-L6-v2)",
    ),
];

/// What a rule does to the tensors it matches.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Action {
    Lossless,
    Lossy(LossySetting),
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Lossless => f.write_str("lossless"),
            Action::Lossy(s) => write!(f, "{s}"),
        }
    }
}

/// One `PATTERN=SETTING` rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub pattern: String,
    pub action: Action,
    /// Whether it came from a `preset:NAME` item.
    pub from_preset: bool,
}

/// An ordered rule list; the first match wins.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LossyRules {
    pub rules: Vec<Rule>,
}

/// Why a `--lossy` value was refused. The message names the item and says
/// what is wrong and what is expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("--lossy item {index} `{item}`: {what}")]
pub struct RuleError {
    /// 1-based position of the item in the comma-separated list.
    pub index: usize,
    pub item: String,
    pub what: String,
}

fn preset_names() -> String {
    PRESETS.iter().map(|p| p.0).collect::<Vec<_>>().join(", ")
}

/// Parses a setting: `lossless`, `mantissa:K`, `abs:EB` or `rel:EB`.
pub fn parse_setting(s: &str) -> Result<Action, String> {
    let s = s.trim();
    if s == "lossless" {
        return Ok(Action::Lossless);
    }
    let (kind, value) = s.split_once(':').ok_or_else(|| {
        format!("unknown setting `{s}`: expected lossless, mantissa:K, abs:EB or rel:EB")
    })?;
    let value = value.trim();
    match kind.trim() {
        "mantissa" => match value.parse::<u8>() {
            Ok(k) if k <= MAX_MANTISSA_K => Ok(Action::Lossy(LossySetting::Mantissa(k))),
            _ => Err(format!(
                "mantissa:K needs K, the mantissa bits to keep, as a whole number from 0 to {MAX_MANTISSA_K}; got `{value}`"
            )),
        },
        "abs" => match value.parse::<f64>() {
            Ok(eb) if eb > 0.0 && (2.0 * eb).is_finite() => {
                Ok(Action::Lossy(LossySetting::Abs(eb)))
            }
            _ => Err(format!(
                "abs:EB needs EB, the absolute error bound, as a positive finite number (e.g. 1e-4); got `{value}`"
            )),
        },
        "rel" => match value.parse::<f64>() {
            Ok(eb) if eb > 0.0 && eb < 1.0 => Ok(Action::Lossy(LossySetting::Rel(eb))),
            _ => Err(format!(
                "rel:EB needs EB, the pointwise relative error bound, as a number between 0 and 1 exclusive (e.g. 0.01); got `{value}`"
            )),
        },
        other => Err(format!(
            "unknown setting kind `{other}`: expected lossless, mantissa:K, abs:EB or rel:EB"
        )),
    }
}

impl LossyRules {
    /// Parses a `--lossy` value (see the module documentation).
    pub fn parse(spec: &str) -> Result<LossyRules, RuleError> {
        let mut rules = Vec::new();
        if spec.trim().is_empty() {
            return Err(RuleError {
                index: 0,
                item: spec.to_string(),
                what: "the rule list is empty: give PATTERN=SETTING items separated by commas, or preset:NAME".into(),
            });
        }
        for (i, item) in spec.split(',').enumerate() {
            let err = |what: String| RuleError {
                index: i + 1,
                item: item.to_string(),
                what,
            };
            let t = item.trim();
            if t.is_empty() {
                return Err(err(
                    "empty item (two commas in a row, or a comma at an end)".into(),
                ));
            }
            if let Some(name) = t.strip_prefix("preset:") {
                let name = name.trim();
                let p = PRESETS.iter().find(|p| p.0 == name).ok_or_else(|| {
                    err(format!(
                        "unknown preset `{name}`; the presets are: {}",
                        preset_names()
                    ))
                })?;
                let expanded = LossyRules::parse(p.1)
                    .map_err(|e| err(format!("preset `{name}` is broken: {e}")))?;
                rules.extend(expanded.rules.into_iter().map(|r| Rule {
                    from_preset: true,
                    ..r
                }));
                continue;
            }
            let (pattern, setting) = t.split_once('=').ok_or_else(|| {
                let mut what = String::from(
                    "expected PATTERN=SETTING (e.g. `*.weight=mantissa:4`) or preset:NAME; there is no `=`",
                );
                // A bare setting: say how to apply it to every tensor.
                if parse_setting(t).is_ok() {
                    what.push_str(&format!(
                        " (for every floating-point tensor, write `*={t}`)"
                    ));
                }
                err(what)
            })?;
            let pattern = pattern.trim();
            if pattern.is_empty() {
                return Err(err(
                    "the pattern before `=` is empty; use `*` to match every tensor".into(),
                ));
            }
            let action = parse_setting(setting).map_err(err)?;
            rules.push(Rule {
                pattern: pattern.to_string(),
                action,
                from_preset: false,
            });
        }
        Ok(LossyRules { rules })
    }

    /// The index of the first rule matching `name`, and its action.
    pub fn lookup(&self, name: &str) -> Option<(usize, Action)> {
        self.rules
            .iter()
            .enumerate()
            .find(|(_, r)| glob(&r.pattern, name))
            .map(|(i, r)| (i, r.action))
    }

    /// The lossy setting for a tensor, if a rule asks for one and the dtype
    /// allows it.
    pub fn setting_for(&self, name: &str, dtype: DType) -> Option<LossySetting> {
        match self.lookup(name) {
            Some((_, Action::Lossy(s))) if tic_format::codec::lossy_dtype_supported(dtype) => {
                Some(s)
            }
            _ => None,
        }
    }
}

impl fmt::Display for LossyRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.rules.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}={}", r.pattern, r.action)?;
        }
        Ok(())
    }
}

/// Whether the glob `pattern` (`*`, `?`) matches the whole of `name`.
pub fn glob(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0usize, 0usize);
    // Position after the last `*` and the name position it is tried at.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == n[ni])) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi + 1, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        for (p, n, want) in [
            ("*", "", true),
            ("*", "a.b.c", true),
            ("*.weight", "encoder.layer.0.weight", true),
            ("*.weight", "encoder.layer.0.weight_g", false),
            (
                "*LayerNorm*",
                "encoder.layer.0.output.LayerNorm.weight",
                true,
            ),
            (
                "*LayerNorm*",
                "encoder.layer.0.output.layernorm.weight",
                false,
            ),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("**x", "x", true),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("*.bias", "bias", false),
            ("é*", "éa", true),
        ] {
            assert_eq!(glob(p, n), want, "{p} vs {n}");
        }
    }

    #[test]
    fn parse_and_first_match_wins() {
        let r = LossyRules::parse(
            " *LayerNorm*=lossless, *.bias=lossless ,*embeddings*=lossless,*.weight=mantissa:4,*=abs:1e-4",
        )
        .unwrap();
        assert_eq!(r.rules.len(), 5);
        let bf = DType::BF16;
        assert_eq!(r.setting_for("x.LayerNorm.weight", bf), None);
        assert_eq!(r.setting_for("x.dense.bias", bf), None);
        assert_eq!(r.setting_for("embeddings.word_embeddings.weight", bf), None);
        assert_eq!(
            r.setting_for("x.dense.weight", bf),
            Some(LossySetting::Mantissa(4))
        );
        assert_eq!(
            r.setting_for("x.position_ids", DType::F32),
            Some(LossySetting::Abs(1e-4))
        );
        // Integer and F64 tensors stay lossless whatever matches.
        assert_eq!(r.setting_for("x.position_ids", DType::I64), None);
        assert_eq!(r.setting_for("x.dense.weight", DType::F64), None);
        assert_eq!(r.lookup("x.dense.bias").unwrap().0, 1);
        assert_eq!(
            r.to_string(),
            "*LayerNorm*=lossless,*.bias=lossless,*embeddings*=lossless,*.weight=mantissa:4,*=abs:1e-4"
        );
        let r = LossyRules::parse("*=rel:0.01").unwrap();
        assert_eq!(
            r.setting_for("w", DType::F16),
            Some(LossySetting::Rel(0.01))
        );
    }

    #[test]
    fn presets_expand_in_place() {
        for (name, rules, _) in PRESETS {
            let r = LossyRules::parse(&format!("preset:{name}")).unwrap();
            assert!(r.rules.iter().all(|r| r.from_preset));
            assert_eq!(r.to_string(), LossyRules::parse(rules).unwrap().to_string());
            let bf = DType::BF16;
            for lossless in [
                "embeddings.word_embeddings.weight",
                "embeddings.LayerNorm.weight",
                "encoder.layer.0.attention.output.LayerNorm.bias",
                "encoder.layer.0.attention.self.query.bias",
                "model.layers.0.input_layernorm.weight",
                "model.norm.weight",
                "transformer.h.0.ln_1.weight",
                "lm_head.weight",
                "model.embed_tokens.weight",
                "pooler.dense.bias",
            ] {
                assert_eq!(r.setting_for(lossless, bf), None, "{name}: {lossless}");
            }
            for lossy in [
                "encoder.layer.0.attention.self.query.weight",
                "encoder.layer.5.intermediate.dense.weight",
                "model.layers.0.mlp.down_proj.weight",
                "pooler.dense.weight",
            ] {
                assert!(r.setting_for(lossy, bf).is_some(), "{name}: {lossy}");
            }
        }
        // A preset can be followed (or preceded) by more rules.
        let r = LossyRules::parse("*pooler*=lossless,preset:safe").unwrap();
        assert_eq!(r.setting_for("pooler.dense.weight", DType::BF16), None);
    }

    fn err(s: &str) -> RuleError {
        LossyRules::parse(s).unwrap_err()
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 0, "the rule list is empty"),
            ("  ", 0, "the rule list is empty"),
            ("*=lossless,,*.w=mantissa:4", 2, "empty item"),
            ("*=lossless,", 2, "empty item"),
            ("*.weight", 1, "there is no `=`"),
            (
                "mantissa:4",
                1,
                "there is no `=` (for every floating-point tensor, write `*=mantissa:4`)",
            ),
            ("=mantissa:4", 1, "the pattern before `=` is empty"),
            ("*=lossy", 1, "unknown setting `lossy`"),
            ("*=", 1, "unknown setting ``"),
            ("*=bits:4", 1, "unknown setting kind `bits`"),
            ("*=mantissa:", 1, "mantissa:K needs K"),
            ("*=mantissa:-1", 1, "got `-1`"),
            ("*=mantissa:24", 1, "from 0 to 23; got `24`"),
            ("*=mantissa:4.5", 1, "whole number"),
            ("*=abs:0", 1, "positive finite number"),
            ("*=abs:-1e-3", 1, "positive finite number"),
            ("*=abs:inf", 1, "got `inf`"),
            ("*=abs:NaN", 1, "got `NaN`"),
            ("*=abs:1e308", 1, "positive finite"),
            ("*=abs:x", 1, "got `x`"),
            ("*=rel:1", 1, "between 0 and 1 exclusive"),
            ("*=rel:0", 1, "between 0 and 1"),
            ("*=rel:2%", 1, "got `2%`"),
            (
                "a=lossless,preset:fast",
                2,
                "unknown preset `fast`; the presets are: safe",
            ),
        ];
        for &(s, index, what) in cases {
            let e = err(s);
            assert_eq!(e.index, index, "{s}: {e}");
            let msg = e.to_string();
            assert!(msg.contains(what), "{s}: `{msg}` lacks `{what}`");
            assert!(msg.starts_with("--lossy item"), "{msg}");
        }
    }
}
