//! The mutations the experiment-file fuzzer applies: structural edits of the parsed table (keys
//! removed, renamed, set to any value; known or invented keys inserted; `[grid]`s of any lists)
//! and text edits of the written file.

use proptest::prelude::*;
use proptest::sample::Index;
use toml::{Table, Value};

/// Every key an experiment file may hold, at any level.
const KEYS: &[&str] = &[
    "name",
    "seeds",
    "dataset",
    "model",
    "train",
    "cam",
    "eval",
    "output",
    "grid",
    "kind",
    "path",
    "segmentations",
    "split",
    "max_classes",
    "max_per_class",
    "image_size",
    "eval_transform",
    "synth",
    "classes",
    "images_per_class",
    "min_side",
    "max_side",
    "seed",
    "difficulty",
    "bird_area",
    "clutter",
    "occlusion",
    "pair_differences",
    "backbone",
    "head",
    "embedding_dim",
    "l2_normalize",
    "pretrained",
    "device",
    "widths",
    "epochs",
    "mining",
    "margin",
    "p",
    "k",
    "optimizer",
    "lr",
    "weight_decay",
    "momentum",
    "schedule",
    "augment",
    "crop_scale",
    "shuffle_labels",
    "methods",
    "proxies",
    "stages",
    "target",
    "leave_one_out",
    "proxy_images_per_class",
    "knn",
    "closed_form",
    "chen",
    "triplets",
    "transfer",
    "centres",
    "gallery",
    "batch_size",
    "tau",
    "iou",
    "mask_threshold",
    "pointing_tolerance",
    "baselines",
    "max_images",
    "faithfulness",
    "faithfulness_steps",
    "dir",
];

/// Words the files use as values, valid in one place or another.
const WORDS: &[&str] = &[
    "easy",
    "standard",
    "hard",
    "synth",
    "cub",
    "class-disjoint",
    "official",
    "squash",
    "center-crop",
    "small-cnn",
    "resnet18",
    "resnet50",
    "embedding",
    "classifier",
    "flex",
    "tch-cuda",
    "semi-hard",
    "batch-hard",
    "all",
    "adam",
    "sgd",
    "cosine",
    "step",
    "embeddingcam",
    "gradcam++",
    "normalized-mean",
    "knn",
    "pre-l2",
    "post-l2",
    "untrained",
    "chen",
    "k-means",
    "block3",
    "results",
    "",
    "datasets/synthcub",
    "a b",
    "🐦",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(KEYS).prop_map(String::from),
        1 => "[a-z_]{1,12}",
        1 => "\\PC{0,8}",
    ]
}

/// A TOML value of any type: numbers at and past every range the files check, NaN, words the
/// files use, arbitrary strings, datetimes, arrays and tables of these.
fn value() -> impl Strategy<Value = Value> {
    let special_int = prop::sample::select(vec![
        0i64,
        -1,
        1,
        2,
        15,
        16,
        255,
        256,
        1024,
        1025,
        1 << 32,
        i64::MAX,
        i64::MIN,
    ]);
    let special_float = prop::sample::select(vec![
        0.0f64,
        -0.0,
        -0.1,
        0.5,
        1.0,
        1.5,
        1e-300,
        1e300,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ]);
    let leaf = prop_oneof![
        2 => special_int.prop_map(Value::Integer),
        1 => any::<i64>().prop_map(Value::Integer),
        2 => special_float.prop_map(Value::Float),
        1 => any::<f64>().prop_map(Value::Float),
        1 => any::<bool>().prop_map(Value::Boolean),
        3 => prop::sample::select(WORDS).prop_map(|w| Value::String(w.into())),
        1 => "\\PC{0,12}".prop_map(Value::String),
        1 => Just(Value::Datetime("1979-05-27T07:32:00Z".parse().unwrap())),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..3)
                .prop_map(|m| Value::Table(m.into_iter().collect())),
        ]
    })
}

/// A `[grid]` key: one of the file's own dotted keys, or an invented one.
#[derive(Debug, Clone)]
pub(super) enum GridKey {
    Existing(Index),
    Named(String),
}

/// A change to the parsed file. Indices pick among the file's keys at every level.
#[derive(Debug, Clone)]
pub(super) enum Op {
    Remove(Index),
    Set(Index, Value),
    /// Into the table picked (the top level when the key picked is not a table).
    Insert(Index, String, Value),
    Rename(Index, String),
    /// The `[grid]` table, replaced.
    Grid(Vec<(GridKey, Vec<Value>)>),
}

pub(super) fn op() -> impl Strategy<Value = Op> {
    let ix = any::<Index>;
    let grid_key = prop_oneof![
        3 => ix().prop_map(GridKey::Existing),
        1 => prop_oneof![
            (prop::sample::select(KEYS), prop::sample::select(KEYS))
                .prop_map(|(a, b)| format!("{a}.{b}")),
            "[a-z._]{0,12}",
        ]
        .prop_map(GridKey::Named),
    ];
    prop_oneof![
        2 => ix().prop_map(Op::Remove),
        4 => (ix(), value()).prop_map(|(i, v)| Op::Set(i, v)),
        2 => (ix(), key(), value()).prop_map(|(i, k, v)| Op::Insert(i, k, v)),
        1 => (ix(), key()).prop_map(|(i, k)| Op::Rename(i, k)),
        // Up to 12^6 cells: past any sensible run count.
        2 => prop::collection::vec((grid_key, prop::collection::vec(value(), 0..13)), 1..7)
            .prop_map(Op::Grid),
    ]
}

/// Every key path of a table, parents before children, in file order.
fn key_paths(table: &Table) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (k, v) in table {
        out.push(vec![k.clone()]);
        if let Value::Table(inner) = v {
            out.extend(key_paths(inner).into_iter().map(|p| [vec![k.clone()], p].concat()));
        }
    }
    out
}

/// The table at `path`, if every key on it names a table.
fn sub_table<'a>(table: &'a mut Table, path: &[String]) -> Option<&'a mut Table> {
    path.iter().try_fold(table, |t, k| match t.get_mut(k) {
        Some(Value::Table(inner)) => Some(inner),
        _ => None,
    })
}

impl Op {
    /// Apply to `table`, pushing the keys touched (as they would appear in a message).
    pub(super) fn apply(&self, table: &mut Table, touched: &mut Vec<String>) {
        let paths = key_paths(table);
        let pick = |i: &Index| (!paths.is_empty()).then(|| paths[i.index(paths.len())].clone());
        match self {
            Op::Remove(i) | Op::Set(i, _) | Op::Rename(i, _) => {
                let Some(path) = pick(i) else { return };
                let (last, up) = path.split_last().unwrap();
                let t = sub_table(table, up).unwrap();
                let old = t.remove(last);
                touched.push(last.clone());
                match self {
                    Op::Set(_, v) => drop(t.insert(last.clone(), v.clone())),
                    Op::Rename(_, k) => {
                        t.insert(k.clone(), old.unwrap_or(Value::Boolean(true)));
                        touched.push(k.clone());
                    }
                    _ => {}
                }
            }
            Op::Insert(i, k, v) => {
                let t = match pick(i) {
                    Some(path) if sub_table(table, &path).is_some() => {
                        sub_table(table, &path).unwrap()
                    }
                    _ => table,
                };
                t.insert(k.clone(), v.clone());
                touched.push(k.clone());
            }
            Op::Grid(keys) => {
                let mut grid = Table::new();
                for (k, values) in keys {
                    let k = match k {
                        GridKey::Existing(i) => pick(i).map(|p| p.join(".")).unwrap_or_default(),
                        GridKey::Named(s) => s.clone(),
                    };
                    touched.push(k.rsplit('.').next().unwrap_or_default().to_string());
                    grid.insert(k, Value::Array(values.clone()));
                }
                table.insert("grid".into(), Value::Table(grid));
                touched.push("grid".into());
            }
        }
    }
}

/// A change to the file's bytes (the structure is what [`Op`] changes; these cut across it).
#[derive(Debug, Clone)]
pub(super) enum TextEdit {
    /// The bytes between two offsets removed.
    Delete(Index, Index),
    /// The bytes between two offsets repeated (a line, a section, half a string).
    Repeat(Index, Index),
    /// Bytes inserted at an offset: a TOML-like line (with its newlines) or random bytes.
    Insert(Index, Vec<u8>),
    Truncate(Index),
    Crlf,
    Bom,
    /// `deep = [[[…]]]`, nested this deep, appended.
    Nest(usize),
    Random(Vec<u8>),
}

pub(super) fn text_edit() -> impl Strategy<Value = TextEdit> {
    let ix = any::<Index>;
    let line = prop_oneof![
        prop::sample::select(vec![
            "[train]",
            "[grid]",
            "[[grid]]",
            "[dataset.synth]",
            "[model",
            "seeds = [",
            "a = 1",
            "p = \"x\"",
            "\"train.margin\" = [0.1, 0.3]",
            "x = { a = 1, a = 2 }",
            "= 1",
            "dataset.kind = \"cub\"",
            "inf = nan",
            "k = 1979-05-27",
            "'''",
            "\"\"\"",
        ])
        .prop_map(String::from),
        "\\PC{0,24}",
    ];
    let inserted = prop_oneof![
        3 => line.prop_map(|l| format!("\n{l}\n").into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 1..8),
    ];
    prop_oneof![
        3 => (ix(), ix()).prop_map(|(a, b)| TextEdit::Delete(a, b)),
        2 => (ix(), ix()).prop_map(|(a, b)| TextEdit::Repeat(a, b)),
        4 => (ix(), inserted).prop_map(|(i, b)| TextEdit::Insert(i, b)),
        2 => ix().prop_map(TextEdit::Truncate),
        1 => Just(TextEdit::Crlf),
        1 => Just(TextEdit::Bom),
        1 => prop_oneof![1..64usize, Just(10_000usize)].prop_map(TextEdit::Nest),
        1 => prop::collection::vec(any::<u8>(), 0..200).prop_map(TextEdit::Random),
    ]
}

impl TextEdit {
    pub(super) fn apply(&self, bytes: &mut Vec<u8>) {
        let at = |i: &Index| i.index(bytes.len() + 1);
        let range = |a: &Index, b: &Index| at(a).min(at(b))..at(a).max(at(b));
        match self {
            TextEdit::Delete(a, b) => drop(bytes.drain(range(a, b))),
            TextEdit::Repeat(a, b) => {
                let r = range(a, b);
                let chunk = bytes[r.clone()].to_vec();
                bytes.splice(r.end..r.end, chunk);
            }
            TextEdit::Insert(i, b) => {
                let k = at(i);
                bytes.splice(k..k, b.iter().copied());
            }
            TextEdit::Truncate(i) => bytes.truncate(at(i)),
            TextEdit::Crlf => {
                *bytes = bytes.split(|&b| b == b'\n').collect::<Vec<_>>().join(&b"\r\n"[..]);
            }
            TextEdit::Bom => drop(bytes.splice(0..0, [0xEF, 0xBB, 0xBF])),
            TextEdit::Nest(depth) => {
                let deep = format!("\ndeep = {}{}\n", "[".repeat(*depth), "]".repeat(*depth));
                bytes.extend_from_slice(deep.as_bytes());
            }
            TextEdit::Random(b) => bytes.clone_from(b),
        }
    }
}
