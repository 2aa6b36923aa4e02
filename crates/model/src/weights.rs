//! Weights in and out: torchvision-named `.safetensors` export with an architecture JSON, import
//! of torchvision ResNet checkpoints (`.pth`/`.pt`, PyTorch's zip format) and `.safetensors`, and
//! burn's own `.bpk` format for training checkpoints.
//!
//! # Tensor names (export and import)
//!
//! Exported files use PyTorch's `state_dict` names and layouts, so `torchvision.models.resnet18()`
//! (or a hand-written small CNN) can `load_state_dict` them with `strict=False` (only
//! `num_batches_tracked`, which is not written, is absent):
//!
//! | network part | names | layout |
//! |---|---|---|
//! | ResNet stem | `conv1.weight`, `bn1.{weight,bias,running_mean,running_var}` | conv `[out, in, kh, kw]` |
//! | ResNet blocks | `layer{1-4}.{j}.conv{1,2,3}.weight`, `layer{1-4}.{j}.bn{1,2,3}.*` | as torchvision |
//! | ResNet shortcut | `layer{2-4}.0.downsample.0.weight`, `layer{2-4}.0.downsample.1.*` (ResNet-50: also `layer1.0`) | |
//! | small CNN | `block{1-4}.conv.weight`, `block{1-4}.bn.*` | |
//! | head | `fc.weight` `[d, K_last]`, `fc.bias` `[d]` | `z = fc.weight · ā + fc.bias` |
//!
//! BatchNorm's `weight`/`bias` are burn's `gamma`/`beta`; `fc.weight` is the transpose of burn's
//! `[K_last, d]` storage. Beside `model.safetensors` the export writes `model.json`
//! ([`Architecture`]): the [`NetConfig`], stage names, input convention, every tensor's name and
//! shape, and the operations in forward order with their strides, paddings, pooling and BatchNorm
//! ε ([`crate::nets::describe::Op`]), so that another tool rebuilds the network from the two
//! files alone. All tensors are f32.

use std::path::{Path, PathBuf};

use burn::store::{
    ApplyError, ApplyResult, BurnToPyTorchAdapter, BurnpackStore, KeyRemapper, ModuleSnapshot,
    ModuleStore, PathFilter, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::error::{WeightsReport, io_err};
use crate::nets::{Net, NetConfig};
use crate::{ModelError, Staged};

/// Value of [`Architecture::format`].
pub const ARCHITECTURE_FORMAT: &str = "embcam-net/1";

/// The JSON written beside an exported `.safetensors`: enough for another tool to rebuild the net.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Architecture {
    /// Always [`ARCHITECTURE_FORMAT`].
    pub format: String,
    /// The network's config (backbone, head, small-CNN widths).
    pub config: NetConfig,
    /// Stage names in forward order.
    pub stages: Vec<String>,
    /// Input convention.
    pub input: String,
    /// Output convention.
    pub output: String,
    /// Every tensor in the file: `(name, shape)`, sorted by name.
    pub tensors: Vec<(String, Vec<usize>)>,
    /// The network input to output as operations with their strides, paddings, pooling and
    /// BatchNorm ε, named by tensor prefix: enough to rebuild it without this crate (absent in
    /// files written before it was added).
    #[serde(default)]
    pub operations: Vec<crate::nets::describe::Op>,
}

/// What to import from a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImportOptions {
    /// Import `fc.*` too. Leave it off to take only the backbone from, e.g., an ImageNet
    /// checkpoint whose 1000-way `fc` does not fit the embedding head (the head keeps its
    /// initialisation and the file's `fc.*` is ignored).
    pub include_head: bool,
}

/// What an import did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportSummary {
    /// Tensors written into the network.
    pub applied: usize,
    /// Tensors of the file that were deliberately not used (`num_batches_tracked`, and `fc.*`
    /// without [`ImportOptions::include_head`]).
    pub ignored: Vec<String>,
}

/// Regexes from file (torchvision) names to the burn module paths of [`Net`].
fn import_remapper() -> Result<KeyRemapper, ModelError> {
    KeyRemapper::from_patterns(vec![
        (r"^(conv1|bn1|layer[1-4]|block[1-4])\.", "backbone.$1."),
        (r"^fc\.", "head.fc."),
        (r"\.downsample\.0\.", ".downsample.conv."),
        (r"\.downsample\.1\.", ".downsample.bn."),
    ])
    .map_err(|e| ModelError::InvalidConfig(format!("internal key remap pattern: {e}")))
}

/// Regexes from burn module paths to file (torchvision) names.
fn export_remapper() -> Result<KeyRemapper, ModelError> {
    KeyRemapper::from_patterns(vec![
        (r"^backbone\.", ""),
        (r"^head\.", ""),
        (r"\.downsample\.conv\.", ".downsample.0."),
        (r"\.downsample\.bn\.", ".downsample.1."),
    ])
    .map_err(|e| ModelError::InvalidConfig(format!("internal key remap pattern: {e}")))
}

fn store_err(path: &Path, e: impl std::fmt::Display) -> ModelError {
    ModelError::Store { path: path.to_path_buf(), message: e.to_string() }
}

/// `model.safetensors` → `model.json`.
pub fn architecture_path(weights: &Path) -> PathBuf {
    weights.with_extension("json")
}

/// Writes `net` to `path` (`.safetensors`, torchvision names, see the module docs) and its
/// [`Architecture`] to [`architecture_path`]`(path)`. Overwrites both.
pub fn export_safetensors(net: &Net, path: &Path) -> Result<Architecture, ModelError> {
    let config_json = serde_json::to_string(&net.config)
        .map_err(|source| ModelError::Json { path: path.to_path_buf(), source })?;
    // Written under a temporary name and renamed, so an interrupted export never leaves a
    // half-written file under the real name.
    let tmp = embcam_cub::atomic::temp_path(path);
    let mut store = SafetensorsStore::from_file(&tmp)
        .skip_enum_variants(true)
        .with_to_adapter(BurnToPyTorchAdapter)
        .remap(export_remapper()?)
        .metadata("embcam.format", ARCHITECTURE_FORMAT)
        .metadata("embcam.config", config_json)
        .overwrite(true);
    let saved = net
        .save_into(&mut store)
        .map_err(|e| store_err(path, e))
        .and_then(|()| canonical_header(&tmp))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(io_err(path)));
    if saved.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    saved?;

    let mut reader = SafetensorsStore::from_file(path);
    let mut tensors: Vec<(String, Vec<usize>)> = reader
        .get_all_tensors()
        .map_err(|e| store_err(path, e))?
        .values()
        .map(|t| (t.name.clone(), t.shape.to_vec()))
        .collect();
    tensors.sort();
    let arch = Architecture {
        format: ARCHITECTURE_FORMAT.to_string(),
        config: net.config.clone(),
        stages: net.stage_names().iter().map(|s| s.to_string()).collect(),
        input: "float32 [B, 3, H, W], RGB, (x/255 - mean)/std with ImageNet mean (0.485, 0.456, 0.406) \
                and std (0.229, 0.224, 0.225); BatchNorm in eval mode"
            .to_string(),
        output: "z = fc.weight · GAP(last stage) + fc.bias; divided by its L2 norm when head.l2".to_string(),
        tensors,
        operations: crate::nets::describe::operations(net),
    };
    let json_path = architecture_path(path);
    let json = serde_json::to_string_pretty(&arch)
        .map_err(|source| ModelError::Json { path: json_path.clone(), source })?;
    embcam_cub::atomic::write_atomic(&json_path, json.as_bytes()).map_err(io_err(&json_path))?;
    Ok(arch)
}

/// Rewrite a safetensors file's JSON header with its keys sorted. burn's writer takes the
/// metadata from a hash map, so their order — and the file's bytes — would change from one process
/// to the next; sorted, one seed gives one file. The entries are the same, so the header keeps its
/// length (it is padded with spaces, as the format allows, if it ever came out shorter).
fn canonical_header(path: &Path) -> Result<(), ModelError> {
    let mut bytes = std::fs::read(path).map_err(io_err(path))?;
    let bad =
        |message: &str| ModelError::Store { path: path.to_path_buf(), message: message.into() };
    let len_bytes: [u8; 8] =
        bytes.get(..8).and_then(|b| b.try_into().ok()).ok_or_else(|| bad("no header length"))?;
    let n = u64::from_le_bytes(len_bytes) as usize;
    let header = bytes.get(8..8 + n).ok_or_else(|| bad("header cut short"))?;
    let value: serde_json::Value = serde_json::from_slice(header)
        .map_err(|source| ModelError::Json { path: path.to_path_buf(), source })?;
    let mut sorted = serde_json::to_vec(&sort_keys(value))
        .map_err(|source| ModelError::Json { path: path.to_path_buf(), source })?;
    if sorted.len() > n {
        return Err(bad("the sorted header is longer than the original"));
    }
    sorted.resize(n, b' ');
    bytes[8..8 + n].copy_from_slice(&sorted);
    std::fs::write(path, bytes).map_err(io_err(path))
}

/// A JSON value with every object's keys in sorted order.
fn sort_keys(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(map) => {
            let sorted: std::collections::BTreeMap<String, serde_json::Value> =
                map.into_iter().map(|(k, v)| (k, sort_keys(v))).collect();
            serde_json::Value::Object(sorted.into_iter().collect())
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(sort_keys).collect())
        }
        other => other,
    }
}

/// Rebuilds a network exported by [`export_safetensors`]: reads the architecture JSON beside
/// `path`, builds the net on `device` and imports every tensor (strictly).
pub fn load_exported(path: &Path, device: &Device) -> Result<Net, ModelError> {
    let json_path = architecture_path(path);
    let text = std::fs::read_to_string(&json_path)
        .map_err(|source| ModelError::Io { path: json_path.clone(), source })?;
    let arch: Architecture = serde_json::from_str(&text)
        .map_err(|source| ModelError::Json { path: json_path.clone(), source })?;
    if arch.format != ARCHITECTURE_FORMAT {
        return Err(ModelError::Store {
            path: json_path,
            message: format!("format `{}`, expected `{ARCHITECTURE_FORMAT}`", arch.format),
        });
    }
    let net = arch.config.init(device, 0)?;
    let (net, _) = import_weights(net, path, ImportOptions { include_head: true })?;
    Ok(net)
}

/// Loads a torchvision-style checkpoint into `net`: `.pth`/`.pt` (PyTorch zip or legacy format, a
/// bare `state_dict` or one under the key `state_dict`/`model`) or `.safetensors`.
///
/// # Errors
/// [`ModelError::WeightsMismatch`] listing every missing, unexpected and mis-shaped tensor (by
/// file name) when the file does not fit; [`ModelError::Store`] when it cannot be read.
pub fn import_weights(
    mut net: Net,
    path: &Path,
    opts: ImportOptions,
) -> Result<(Net, ImportSummary), ModelError> {
    let ext =
        path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
    let filter = if opts.include_head {
        PathFilter::new().match_all()
    } else {
        PathFilter::new().with_regex(r"^backbone\.")
    };
    let (result, keys): (ApplyResult, Vec<String>) = match ext.as_str() {
        "pth" | "pt" => {
            let mut store = pytorch_store(path)?
                .remap(import_remapper()?)
                .skip_enum_variants(true)
                .filter(filter)
                .allow_partial(true)
                .validate(false);
            let keys = store.keys().map_err(|e| store_err(path, e))?;
            (net.load_from(&mut store).map_err(|e| store_err(path, e))?, keys)
        }
        "safetensors" => {
            let mut store = SafetensorsStore::from_file(path)
                .remap(import_remapper()?)
                .skip_enum_variants(true)
                .with_from_adapter(PyTorchToBurnAdapter)
                .filter(filter)
                .allow_partial(true)
                .validate(false);
            let keys = store.keys().map_err(|e| store_err(path, e))?;
            (net.load_from(&mut store).map_err(|e| store_err(path, e))?, keys)
        }
        other => {
            return Err(ModelError::Store {
                path: path.to_path_buf(),
                message: format!(
                    "unknown weights extension `{other}`; expected .pth, .pt or .safetensors"
                ),
            });
        }
    };
    let mut summary = check_apply(result, path, opts)?;
    if !opts.include_head {
        // Filtered-out tensors are not reported by the store: list the file's head here.
        summary
            .ignored
            .extend(keys.iter().filter(|k| k.starts_with("head.")).map(|k| file_name_of(k)));
        summary.ignored.sort();
        summary.ignored.dedup();
    }
    Ok((net, summary))
}

/// A PyTorch store; checkpoints saved as `{"state_dict": ...}` or `{"model": ...}` are unwrapped.
fn pytorch_store(path: &Path) -> Result<PytorchStore, ModelError> {
    let mut probe = PytorchStore::from_file(path);
    let keys = probe.keys().map_err(|e| store_err(path, e))?;
    let nested = ["state_dict", "model"]
        .into_iter()
        .find(|k| !keys.is_empty() && keys.iter().all(|name| name.starts_with(&format!("{k}."))));
    Ok(match nested {
        Some(k) => PytorchStore::from_file(path).with_top_level_key(k),
        None => PytorchStore::from_file(path),
    })
}

/// Back from a burn module path to the file's (torchvision) name, for messages.
fn file_name_of(module_path: &str) -> String {
    let mut name = module_path
        .strip_prefix("backbone.")
        .or_else(|| module_path.strip_prefix("head."))
        .unwrap_or(module_path)
        .replace(".downsample.conv.", ".downsample.0.")
        .replace(".downsample.bn.", ".downsample.1.");
    for (burn, torch) in [(".gamma", ".weight"), (".beta", ".bias")] {
        if let Some(stem) = name.strip_suffix(burn) {
            name = format!("{stem}{torch}");
        }
    }
    name
}

fn check_apply(
    result: ApplyResult,
    path: &Path,
    opts: ImportOptions,
) -> Result<ImportSummary, ModelError> {
    let mut report = WeightsReport {
        path: path.to_path_buf(),
        applied: result.applied.len(),
        ..Default::default()
    };
    let mut ignored = Vec::new();
    for name in result.unused {
        let is_head = name.starts_with("head.");
        if name.ends_with("num_batches_tracked") || (is_head && !opts.include_head) {
            ignored.push(file_name_of(&name));
        } else {
            report.unexpected.push(file_name_of(&name));
        }
    }
    for (name, _) in result.missing {
        if opts.include_head || !name.starts_with("head.") {
            report.missing.push(file_name_of(&name));
        }
    }
    for err in result.errors {
        match err {
            ApplyError::ShapeMismatch { path, expected, found } => report.mis_shaped.push(format!(
                "{}: network {:?}, file {:?}",
                file_name_of(&path),
                expected.to_vec(),
                found.to_vec()
            )),
            other => report.other.push(other.to_string()),
        }
    }
    if report.missing.is_empty()
        && report.unexpected.is_empty()
        && report.mis_shaped.is_empty()
        && report.other.is_empty()
    {
        ignored.sort();
        Ok(ImportSummary { applied: report.applied, ignored })
    } else {
        report.missing.sort();
        report.unexpected.sort();
        Err(ModelError::WeightsMismatch(Box::new(report)))
    }
}

/// Saves `net` in burn's `.bpk` format (module paths, parameter ids and BatchNorm running
/// statistics included): the format of training checkpoints.
pub fn save_burnpack(net: &Net, path: &Path) -> Result<(), ModelError> {
    let mut store = BurnpackStore::from_file(path).auto_extension(false).overwrite(true);
    net.save_into(&mut store).map_err(|e| store_err(path, e))
}

/// Loads a `.bpk` written by [`save_burnpack`] into `net` (which must have the same config).
pub fn load_burnpack(mut net: Net, path: &Path) -> Result<Net, ModelError> {
    let mut store =
        BurnpackStore::from_file(path).auto_extension(false).allow_partial(true).validate(false);
    let result = net.load_from(&mut store).map_err(|e| store_err(path, e))?;
    check_apply(result, path, ImportOptions { include_head: true })?;
    Ok(net)
}
