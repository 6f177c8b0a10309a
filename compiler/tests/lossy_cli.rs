//! `tic compile --lossy` end to end through the binary: rules and presets,
//! what inspect/verify/decompress say, exit codes, and every restored
//! element checked against its bound (and every lossless tensor and file
//! byte for byte).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tic_format::DType;

fn tic(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tic"))
        .args(args)
        .output()
        .expect("run tic")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `tic compile MODEL -o ART --unsigned --lossy RULES`.
fn compile_lossy(model: &Path, art: &Path, rules: &str) -> Output {
    tic(&[
        "compile",
        p(model),
        "-o",
        p(art),
        "--unsigned",
        "--lossy",
        rules,
    ])
}

/// `tic decompress ART -o OUT --allow-unsigned`.
fn decompress_unsigned(art: &Path, out: &Path) -> Output {
    tic(&["decompress", p(art), "-o", p(out), "--allow-unsigned"])
}

/// Deterministic normal samples (xorshift + Box-Muller).
struct Rng(u64);
impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

fn bf16(x: f32) -> u16 {
    // Round to nearest even (no NaNs go through here).
    let b = x.to_bits();
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// Writes a safetensors file: tensors in order, JSON padded to 8 bytes.
fn write_safetensors(path: &Path, tensors: &[(&str, &str, Vec<u64>, Vec<u8>)]) {
    let mut json = String::from("{\"__metadata__\":{\"format\":\"pt\"}");
    let mut at = 0usize;
    for (name, dtype, shape, data) in tensors {
        json.push_str(&format!(
            ",\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":{shape:?},\"data_offsets\":[{at},{}]}}",
            at + data.len()
        ));
        at += data.len();
    }
    json.push('}');
    while json.len() % 8 != 0 {
        json.push(' ');
    }
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(json.as_bytes());
    for (_, _, _, data) in tensors {
        bytes.extend_from_slice(data);
    }
    std::fs::write(path, bytes).unwrap();
}

/// (name, dtype, bytes) of one tensor.
type Tensor = (String, DType, Vec<u8>);

/// The header bytes (length prefix and JSON) of a safetensors file, and its
/// tensors.
fn read_safetensors(path: &Path) -> (Vec<u8>, Vec<Tensor>) {
    let file = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let data = &file[8 + n..];
    let st = tic_format::safetensors::parse_header(&file[8..8 + n], data.len() as u64).unwrap();
    (
        file[..8 + n].to_vec(),
        st.into_iter()
            .map(|t| {
                (
                    t.name,
                    t.dtype,
                    data[t.begin as usize..t.end as usize].to_vec(),
                )
            })
            .collect(),
    )
}

fn value(dtype: DType, b: &[u8]) -> (u32, f64) {
    match dtype {
        DType::BF16 => {
            let x = u32::from(u16::from_le_bytes([b[0], b[1]]));
            (x, f64::from(f32::from_bits(x << 16)))
        }
        DType::F32 => {
            let x = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            (x, f64::from(f32::from_bits(x)))
        }
        other => panic!("no values for {other}"),
    }
}

/// Every element within `bound` (relative or absolute), specials exact,
/// signs kept. Returns how many elements changed.
fn check_within(dtype: DType, orig: &[u8], dec: &[u8], relative: bool, bound: f64) -> usize {
    assert_eq!(orig.len(), dec.len());
    let es = dtype.size();
    let sign = 1u32 << (8 * es - 1);
    let mut changed = 0;
    for (a, b) in orig.chunks_exact(es).zip(dec.chunks_exact(es)) {
        let ((x, fx), (y, fy)) = (value(dtype, a), value(dtype, b));
        if !fx.is_finite() || fx == 0.0 {
            assert_eq!(x, y, "special {x:#x} not kept");
            continue;
        }
        assert_eq!(x & sign, y & sign, "sign of {fx:e} lost");
        let err = (fy - fx).abs();
        let lim = if relative { bound * fx.abs() } else { bound };
        assert!(err <= lim, "{fx:e} -> {fy:e} exceeds {bound:e}");
        changed += usize::from(x != y);
    }
    changed
}

/// A small model: BF16 and F32 matrices with special values, biases, a
/// LayerNorm, an integer tensor, and a config blob.
fn make_model(dir: &Path) -> PathBuf {
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut w: Vec<u8> = (0..256 * 301)
        .flat_map(|_| bf16((rng.normal() * 0.05) as f32).to_le_bytes())
        .collect();
    // NaN payload, ±Inf, ±0, subnormals, the largest finite values.
    for (i, v) in [
        0x7fa5u16, 0x7f80, 0xff80, 0x0000, 0x8000, 0x0001, 0x8003, 0x7f7f, 0xff7f,
    ]
    .iter()
    .enumerate()
    {
        w[2 * i * 37..2 * i * 37 + 2].copy_from_slice(&v.to_le_bytes());
    }
    let bias: Vec<u8> = (0..301)
        .flat_map(|_| bf16((rng.normal() * 0.01) as f32).to_le_bytes())
        .collect();
    let ln: Vec<u8> = (0..301)
        .flat_map(|_| (1.0 + rng.normal() as f32 * 0.1).to_le_bytes())
        .collect();
    let proj: Vec<u8> = (0..200 * 333)
        .flat_map(|_| ((rng.normal() * 0.03) as f32).to_le_bytes())
        .collect();
    let ids: Vec<u8> = (0..10i64).flat_map(|i| (i * 1000).to_le_bytes()).collect();
    write_safetensors(
        &model.join("model.safetensors"),
        &[
            ("encoder.layer.0.dense.weight", "BF16", vec![256, 301], w),
            ("encoder.layer.0.dense.bias", "BF16", vec![301], bias),
            ("encoder.LayerNorm.weight", "F32", vec![301], ln),
            ("proj.weight", "F32", vec![200, 333], proj),
            ("position_ids", "I64", vec![10], ids),
        ],
    );
    std::fs::write(model.join("config.json"), b"{\"hidden\": 301}\n").unwrap();
    model
}

#[test]
fn lossy_compile_inspect_verify_decompress() {
    let d = tempfile::tempdir().unwrap();
    let model = make_model(d.path());
    let art = d.path().join("a.tic");
    let rules = "*LayerNorm*=lossless,*.bias=lossless,encoder.*.weight=mantissa:4,\
                 proj.weight=abs:1e-3,position_ids=rel:0.01";
    let o = compile_lossy(&model, &art, rules);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("lossy: 2 tensor(s)"), "{out}");

    // inspect --json lists the two lossy tensors with their bounds and errors.
    let o = tic(&["inspect", p(&art), "--json"]);
    assert!(o.status.success());
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let lossy = j["lossy_tensors"].as_array().unwrap();
    assert_eq!(lossy.len(), 2, "{j:#}");
    let by_name = |n: &str| lossy.iter().find(|t| t["name"] == n).unwrap().clone();
    let w = by_name("encoder.layer.0.dense.weight");
    assert_eq!(w["bound_kind"], "relative");
    assert_eq!(w["bound"], 1.0 / 32.0);
    assert!(w["codec"]
        .as_str()
        .unwrap()
        .starts_with("mantissa(BF16,K=4"));
    let mean = w["mean_rel_error"].as_f64().unwrap();
    assert!(mean > 0.005 && mean < 0.015, "{w}");
    assert!(w["max_rel_error"].as_f64().unwrap() <= 1.0 / 32.0);
    let pj = by_name("proj.weight");
    assert_eq!(pj["bound_kind"], "absolute");
    assert_eq!(pj["bound"], 1e-3);
    assert!(pj["max_abs_error"].as_f64().unwrap() <= 1e-3);
    assert!(pj["max_abs_error"].as_f64().unwrap() > 1e-4);

    // verify: fine by default, exit 1 with --require-lossless.
    let o = tic(&["verify", p(&art), "--allow-unsigned"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    let (out, _) = text(&o);
    assert!(out.contains("lossless:   NO: 2 lossy tensor(s): "), "{out}");
    assert!(out.contains("proj.weight"), "{out}");
    // The text view of inspect shows each lossy tensor's bound and errors.
    let o = tic(&["inspect", p(&art)]);
    let (out, _) = text(&o);
    let row = out
        .lines()
        .find(|l| l.starts_with("proj.weight") && l.contains("absolute <= 1.000e-3"))
        .unwrap_or_else(|| panic!("no lossy row for proj.weight:\n{out}"));
    assert!(row.contains('%'), "{row}");
    let o = tic(&["verify", p(&art), "--allow-unsigned", "--require-lossless"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(
        err.contains("2 tensor(s) are lossy") && err.contains("proj.weight"),
        "{err}"
    );

    // verify --against the original model: the weights file differs, as
    // lossy coding means to, and the error says so; config.json matches.
    let o = tic(&[
        "verify",
        p(&art),
        "--allow-unsigned",
        "--against",
        p(&model),
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(
        err.contains("1 file(s) differ: model.safetensors (holds lossy tensors"),
        "{err}"
    );

    // decompress: valid safetensors, same names/dtypes/header, lossless
    // parts exact, lossy parts within their bounds, and it says so.
    let restored = d.path().join("restored");
    let o = decompress_unsigned(&art, &restored);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("not byte-identical"), "{out}");
    assert!(
        out.contains("encoder.layer.0.dense.weight") && out.contains("proj.weight"),
        "{out}"
    );
    assert_eq!(
        std::fs::read(restored.join("config.json")).unwrap(),
        std::fs::read(model.join("config.json")).unwrap()
    );
    let (h0, orig) = read_safetensors(&model.join("model.safetensors"));
    let (h1, dec) = read_safetensors(&restored.join("model.safetensors"));
    assert_eq!(h0, h1, "safetensors header");
    for ((name, dtype, a), (name2, dtype2, b)) in orig.iter().zip(&dec) {
        assert_eq!((name, dtype), (name2, dtype2));
        match name.as_str() {
            "encoder.layer.0.dense.weight" => {
                assert!(check_within(*dtype, a, b, true, 1.0 / 32.0) > 1000);
            }
            "proj.weight" => {
                assert!(check_within(*dtype, a, b, false, 1e-3) > 1000);
            }
            _ => assert!(a == b, "{name} is not bit-exact"),
        }
    }

    // The runtime API returns the same decoded bytes, checked by digest.
    let a = tic_runtime::Artifact::open(
        &art,
        &tic_runtime::OpenOptions {
            trust: tic_runtime::Trust {
                keys: vec![],
                allow_unsigned: true,
            },
            identities: vec![],
        },
    )
    .unwrap();
    for (name, _, b) in &dec {
        assert!(&a.read_tensor(name).unwrap() == b, "{name}");
    }
    // What it restores is what its header records.
    let o = tic(&[
        "verify",
        p(&art),
        "--allow-unsigned",
        "--against",
        p(&restored),
    ]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
}

#[test]
fn bad_rules_exit_2_and_say_why() {
    let d = tempfile::tempdir().unwrap();
    let model = make_model(d.path());
    let art = d.path().join("a.tic");
    for (rules, what) in [
        ("*.weight=mantissa:99", "from 0 to 23; got `99`"),
        ("*.weight", "there is no `=`"),
        ("*=rel:1.5", "between 0 and 1 exclusive"),
        ("*=abs:-1", "positive finite number"),
        ("preset:nope", "unknown preset `nope`"),
        ("*=zstd:3", "unknown setting kind `zstd`"),
    ] {
        let o = compile_lossy(&model, &art, rules);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{rules}: {out}{err}");
        assert!(err.contains(what), "{rules}: {err}");
        assert!(!art.exists(), "{rules}: output written");
    }
}

#[test]
fn preset_on_the_example_model() {
    let d = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/model");
    let art = d.path().join("e.tic");
    let o = compile_lossy(&example, &art, "preset:safe");
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(!err.contains("matches no tensor"), "{err}");
    let j: serde_json::Value =
        serde_json::from_slice(&tic(&["inspect", p(&art), "--json"]).stdout).unwrap();
    let lossy = j["lossy_tensors"].as_array().unwrap();
    assert!(!lossy.is_empty());
    for t in lossy {
        let name = t["name"].as_str().unwrap();
        assert!(name.ends_with(".weight"), "{name}");
        for kept in ["LayerNorm", "embeddings", "bias"] {
            assert!(!name.contains(kept), "{name} should be lossless");
        }
        assert!(t["max_rel_error"].as_f64().unwrap() <= 1.0 / 32.0);
    }
    // --require-lossless names the first five and counts the rest.
    assert!(lossy.len() > 5, "{} lossy tensors", lossy.len());
    let o = tic(&["verify", p(&art), "--allow-unsigned", "--require-lossless"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    let first: Vec<&str> = lossy[..5]
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    let want = format!(
        "{} tensor(s) are lossy but --require-lossless was given: {} and {} more (`tic inspect` lists them)",
        lossy.len(),
        first.join(", "),
        lossy.len() - 5
    );
    assert!(err.contains(&want), "{err}");
    // The JSON report of a broken policy keeps the whole summary: every
    // chunk was checked, and every lossy tensor is listed.
    let o = tic(&[
        "verify",
        p(&art),
        "--allow-unsigned",
        "--require-lossless",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["accepted"], false);
    assert_eq!(v["exit_code"], 1);
    assert_eq!(v["error"].as_str().unwrap(), want);
    assert_eq!(v["chunks_checked"], j["chunks"]);
    assert_eq!(v["lossy_tensors"], j["lossy_tensors"]);
    let restored = d.path().join("r");
    let o = decompress_unsigned(&art, &restored);
    assert!(o.status.success(), "{:?}", text(&o));
    // Its note names the first five lossy tensors too, not all of them.
    let note = format!(
        "note: the output is not byte-identical to the original: {} tensor(s) were lossy-coded: {} and {} more",
        lossy.len(),
        first.join(", "),
        lossy.len() - 5
    );
    assert!(text(&o).0.contains(&note), "{:?}", text(&o));
    let lossy_names: Vec<&str> = lossy.iter().map(|t| t["name"].as_str().unwrap()).collect();
    let mut checked = 0;
    for e in std::fs::read_dir(&example).unwrap() {
        let f = e.unwrap().path();
        let rel = f.file_name().unwrap();
        if f.is_dir() {
            continue;
        }
        let g = restored.join(rel);
        if f.extension().is_some_and(|x| x == "safetensors") {
            let (h0, orig) = read_safetensors(&f);
            let (h1, dec) = read_safetensors(&g);
            assert_eq!(h0, h1);
            for ((name, dtype, a), (_, _, b)) in orig.iter().zip(&dec) {
                if lossy_names.contains(&name.as_str()) {
                    check_within(*dtype, a, b, true, 1.0 / 32.0);
                    checked += 1;
                } else {
                    assert!(a == b, "{name} changed");
                }
            }
        } else {
            assert!(std::fs::read(&f).unwrap() == std::fs::read(&g).unwrap());
        }
    }
    assert_eq!(checked, lossy_names.len());
}

#[test]
fn help_names_the_preset() {
    let o = tic(&["compile", "--help"]);
    let (out, _) = text(&o);
    assert!(out.contains("--lossy <RULES>"), "{out}");
    for (name, rules, _) in tic_compiler::PRESETS {
        assert!(out.contains(&format!("preset:{name}")), "{out}");
        assert!(out.contains(rules), "{out}");
    }
    let (short, _) = text(&tic(&["compile", "-h"]));
    assert!(short.contains("preset:safe"), "{short}");
}

#[test]
fn without_lossy_everything_is_lossless() {
    let d = tempfile::tempdir().unwrap();
    let model = make_model(d.path());
    let art = d.path().join("a.tic");
    let o = tic(&["compile", p(&model), "-o", p(&art), "--unsigned"]);
    assert!(o.status.success());
    assert!(!text(&o).0.contains("lossy"));
    let o = tic(&["verify", p(&art), "--allow-unsigned", "--require-lossless"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    // Lossy rules that only select non-float tensors change nothing either.
    let art2 = d.path().join("b.tic");
    let o = compile_lossy(&model, &art2, "position_ids=mantissa:2");
    assert!(o.status.success());
    let o = tic(&["verify", p(&art2), "--allow-unsigned", "--require-lossless"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
}
