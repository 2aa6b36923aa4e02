//! Model randomisation for saliency sanity checks (Adebayo et al., "Sanity Checks for Saliency
//! Maps", NeurIPS 2018): re-draw the weights of chosen layers from their initialisation's
//! distribution, so that a CAM method's maps can be compared before and after
//! (`embcam_eval::sanity`).
//!
//! - [`layers`]: the learnable layers of a module (every `Conv2d` and `Linear`), by path
//!   (`backbone.block1.conv`, `backbone.layer4.1.conv2`, `head.fc`), in declaration order — for
//!   this crate's networks the forward order, the head last.
//! - [`randomize_layers`]: re-draw the named layers' weights and biases.
//! - [`cascading_steps`]: Adebayo et al.'s cascade, from the head down: step `k` randomises the
//!   last `k` layers. [`independent_steps`]: one layer at a time, the rest trained.
//!
//! Distributions are the initialisation's ([`NetConfig::init`](crate::NetConfig::init)):
//! convolution weights Kaiming normal (fan-out, `σ = √(2 / (C_out k²))`), convolution biases and
//! linear weights and biases PyTorch's `U(±1/√fan_in)`. BatchNorm's γ, β and running statistics are
//! kept (Adebayo et al. randomise the layers' weights). Each layer draws from its own generator,
//! seeded by the seed and the layer's path: a layer gets the same random weights in every step of
//! a cascade and in its independent step, and on every backend.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::ModelError;

/// The module types whose parameters are a "layer".
const LAYER_TYPES: [&str; 2] = ["Struct:Conv2d", "Struct:Linear"];

/// Path bookkeeping shared by the visitor and the mapper: field names joined by `.`, enum
/// variant names left out (`backbone.block1.conv`, not `backbone.SmallCnn.block1.conv`).
#[derive(Default)]
struct Path {
    names: Vec<String>,
    /// When the innermost entered field is a parameter of a layer: (layer path, parameter name,
    /// layer type).
    param: Option<(String, String, String)>,
}

impl Path {
    fn enter(&mut self, name: &str, container: &str) {
        if LAYER_TYPES.contains(&container) {
            self.param = Some((self.names.join("."), name.to_string(), container.to_string()));
        }
        if !container.starts_with("Enum:") {
            self.names.push(name.to_string());
        }
    }
    fn exit(&mut self, container: &str) {
        if !container.starts_with("Enum:") {
            self.names.pop();
        }
        if LAYER_TYPES.contains(&container) {
            self.param = None;
        }
    }
}

struct Lister {
    path: Path,
    layers: Vec<String>,
}

impl ModuleVisitor for Lister {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }
    fn exit_module(&mut self, _name: &str, container_type: &str) {
        self.path.exit(container_type);
    }
    fn visit_float<const D: usize>(&mut self, _param: &Param<Tensor<D>>) {
        if let Some((layer, _, _)) = &self.path.param
            && !self.layers.contains(layer)
        {
            self.layers.push(layer.clone());
        }
    }
}

/// The learnable layers of `model` (every `Conv2d` and `Linear`), by path, in declaration order.
pub fn layers<M: Module>(model: &M) -> Vec<String> {
    let mut lister = Lister { path: Path::default(), layers: Vec::new() };
    model.visit(&mut lister);
    lister.layers
}

struct Randomizer<'a> {
    path: Path,
    targets: &'a [String],
    seed: u64,
    /// The generator of the layer being mapped, and its fan-in (set by its weight).
    current: Option<(String, StdRng, usize)>,
}

impl Randomizer<'_> {
    fn rng_for(&self, layer: &str) -> StdRng {
        // FNV-1a over the path, mixed with the seed (SplitMix64's finaliser).
        let mut h = 0xCBF2_9CE4_8422_2325u64;
        for b in layer.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
        }
        let mut z = h ^ self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        StdRng::seed_from_u64(z ^ (z >> 31))
    }
}

/// A standard normal draw (Box–Muller), as the initialiser's.
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

impl ModuleMapper for Randomizer<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }
    fn exit_module(&mut self, _name: &str, container_type: &str) {
        self.path.exit(container_type);
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some((layer, name, kind)) = self.path.param.clone() else { return param };
        if !self.targets.contains(&layer) {
            return param;
        }
        if self.current.as_ref().is_none_or(|(l, _, _)| *l != layer) {
            let rng = self.rng_for(&layer);
            self.current = Some((layer.clone(), rng, 0));
        }
        let Some((_, rng, fan_in)) = self.current.as_mut() else { return param };
        param.map(|t| {
            let dims = t.dims();
            let n: usize = dims.iter().product();
            let conv = kind == "Struct:Conv2d";
            if name == "weight" {
                // Conv2d: [C_out, C_in, k, k]; Linear (burn's layout): [d_in, d_out].
                let receptive: usize = dims.iter().skip(2).product();
                *fan_in =
                    if conv { dims.get(1).copied().unwrap_or(1) * receptive } else { dims[0] };
            }
            let values: Vec<f32> = if conv && name == "weight" {
                let std = (2.0 / (dims[0] * dims.iter().skip(2).product::<usize>()) as f64).sqrt();
                (0..n).map(|_| (normal(rng) * std) as f32).collect()
            } else {
                let bound = 1.0 / ((*fan_in).max(1) as f64).sqrt();
                (0..n).map(|_| rng.random_range(-bound..bound) as f32).collect()
            };
            let (device, dtype) = (t.device(), t.dtype());
            Tensor::<D>::from_data(TensorData::new(values, dims), &device).cast(dtype)
        })
    }
}

/// Re-draw the weights and biases of the named layers (paths from [`layers`]) from their
/// initialisation's distribution (module docs), each from a generator seeded by `seed` and its
/// path. Other parameters are returned unchanged.
///
/// # Errors
/// A name that is not one of `model`'s layers (the message lists them).
pub fn randomize_layers<M: Module>(
    model: M,
    targets: &[String],
    seed: u64,
) -> Result<M, ModelError> {
    let all = layers(&model);
    if let Some(bad) = targets.iter().find(|t| !all.contains(t)) {
        return Err(ModelError::InvalidConfig(format!(
            "no layer `{bad}` to randomise; the network's layers are: {}",
            all.join(", ")
        )));
    }
    let mut mapper = Randomizer { path: Path::default(), targets, seed, current: None };
    Ok(model.map(&mut mapper))
}

/// One step of a randomisation experiment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RandomizationStep {
    /// `cascade:<deepest layer randomised so far>` or `independent:<layer>`.
    pub label: String,
    /// The layers randomised in this step.
    pub layers: Vec<String>,
}

/// Adebayo et al.'s cascading randomisation from the head down: step `k` (1-based) randomises the
/// last `k` of `layers` (pass [`layers`]'s forward order); the last step randomises every layer.
pub fn cascading_steps(layers: &[String]) -> Vec<RandomizationStep> {
    (1..=layers.len())
        .map(|k| {
            let from = layers.len() - k;
            RandomizationStep {
                label: format!("cascade:{}", layers[from]),
                layers: layers[from..].to_vec(),
            }
        })
        .collect()
}

/// Independent randomisation: one step per layer, that layer alone randomised.
pub fn independent_steps(layers: &[String]) -> Vec<RandomizationStep> {
    layers
        .iter()
        .map(|l| RandomizationStep { label: format!("independent:{l}"), layers: vec![l.clone()] })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use burn::tensor::Device;

    use super::*;
    use crate::{BackboneKind, Net, NetConfig};

    fn net() -> Net {
        NetConfig::embedding(BackboneKind::SmallCnn, 8, true)
            .with_small_cnn_widths([4, 6, 8, 10])
            .init(&Device::flex(), 1)
            .unwrap()
    }

    fn weights(net: &Net) -> Vec<Vec<f32>> {
        struct All(Vec<Vec<f32>>);
        impl ModuleVisitor for All {
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
                self.0.push(p.val().try_into_vec_as::<f32>().unwrap());
            }
        }
        let mut all = All(Vec::new());
        net.visit(&mut all);
        all.0
    }

    #[test]
    fn layers_are_named_by_path_in_forward_order() {
        let names = layers(&net());
        let expect = ["block1", "block2", "block3", "block4"].map(|b| format!("backbone.{b}.conv"));
        assert_eq!(names[..4], expect);
        assert_eq!(names[4], "head.fc");
        assert_eq!(names.len(), 5);
        let r18 = NetConfig::embedding(BackboneKind::Resnet18, 4, false).init(&Device::flex(), 0);
        let r18 = layers(&r18.unwrap());
        // Stem, 16 block convolutions, 3 downsample convolutions, the head.
        assert_eq!(r18.len(), 1 + 16 + 3 + 1);
        assert_eq!((r18[0].as_str(), r18[20].as_str()), ("backbone.conv1", "head.fc"));
        assert!(r18.contains(&"backbone.layer2.0.downsample.conv".to_string()), "{r18:?}");
    }

    #[test]
    fn randomising_changes_the_named_layers_only_and_is_seeded() {
        let original = weights(&net());
        let targets = vec!["backbone.block4.conv".to_string(), "head.fc".to_string()];
        let a = weights(&randomize_layers(net(), &targets, 7).unwrap());
        let b = weights(&randomize_layers(net(), &targets, 7).unwrap());
        let c = weights(&randomize_layers(net(), &targets, 8).unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        // Parameters in visit order: per block conv weight, BN γ, β, running mean, var (5 ×
        // 4 = 20), then head weight and bias. Changed: block4's conv weight (15), head (20, 21).
        let changed: Vec<usize> = (0..a.len()).filter(|&k| a[k] != original[k]).collect();
        assert_eq!(changed, vec![15, 20, 21]);
        // A layer draws the same weights whatever else is randomised with it.
        let alone = weights(&randomize_layers(net(), &targets[1..], 7).unwrap());
        assert_eq!(alone[20], a[20]);
        let err = randomize_layers(net(), &["head.nope".to_string()], 0).unwrap_err().to_string();
        assert!(err.contains("head.nope") && err.contains("backbone.block1.conv"), "{err}");
    }

    #[test]
    fn redrawn_weights_follow_the_initialisation() {
        // block4's conv: C_out = 10, k = 3 → σ = √(2/90) = 0.149; the head: d_in = 10 →
        // U(±0.316), whose sd is 0.316/√3 = 0.183.
        let w = weights(&randomize_layers(net(), &layers(&net()), 3).unwrap());
        let sd = |v: &[f32]| {
            let m = v.iter().sum::<f32>() / v.len() as f32;
            (v.iter().map(|x| (x - m).powi(2)).sum::<f32>() / v.len() as f32).sqrt()
        };
        assert!((sd(&w[15]) - (2.0f32 / 90.0).sqrt()).abs() < 0.02, "{}", sd(&w[15]));
        let bound = 1.0 / 10f32.sqrt();
        assert!(w[20].iter().chain(&w[21]).all(|v| v.abs() <= bound));
        assert!((sd(&w[20]) - bound / 3f32.sqrt()).abs() < 0.03, "{}", sd(&w[20]));
    }

    #[test]
    fn steps_cascade_from_the_head_down() {
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let steps = cascading_steps(&names);
        assert_eq!(
            steps[0],
            RandomizationStep { label: "cascade:c".into(), layers: vec!["c".into()] }
        );
        assert_eq!(steps[2].layers, names);
        assert_eq!(steps[2].label, "cascade:a");
        let ind = independent_steps(&names);
        assert_eq!(
            ind[1],
            RandomizationStep { label: "independent:b".into(), layers: vec!["b".into()] }
        );
    }
}
