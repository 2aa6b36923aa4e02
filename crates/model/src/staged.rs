//! Per-stage access to a network, the interface the CAM crate is written against.
//!
//! For any stage `s` of the backbone, `forward_from(forward_to(x, s)?, s)?` equals the network's
//! output before L2 normalisation (tested for every stage of every backbone).

use burn::tensor::Tensor;

use crate::ModelError;
use crate::nets::Net;

/// A network whose backbone stages can be addressed by name.
///
/// Implemented by [`Net`] (backbone + head).
pub trait Staged {
    /// Stage names in forward order (`layer1`..`layer4` for ResNets, `block1`..`block4` for the
    /// small CNN).
    fn stage_names(&self) -> Vec<&'static str>;

    /// The activation of `stage`.
    ///
    /// # Shapes
    /// - `x`: `[B, 3, H, W]` → `[B, K, h, w]`
    ///
    /// # Errors
    /// [`ModelError::UnknownStage`] (listing the stages that exist).
    fn forward_to(&self, x: Tensor<4>, stage: &str) -> Result<Tensor<4>, ModelError>;

    /// Continues from `stage`'s activation to the output **before** L2 normalisation: the
    /// embedding `z`, or the logits of a classifier.
    ///
    /// # Shapes
    /// - `a`: `[B, K, h, w]` → `[B, d]`
    ///
    /// # Errors
    /// [`ModelError::UnknownStage`].
    fn forward_from(&self, a: Tensor<4>, stage: &str) -> Result<Tensor<2>, ModelError>;

    /// `(W, b)` of the head when it is GAP → linear, with `W` of shape `[d, K_last]` and `b` of
    /// shape `[d]`, oriented so that `z = W · ā + b` for the pooled last-stage activation
    /// `ā ∈ R^{K_last}` (the torchvision / PyTorch `nn.Linear.weight` orientation). Used for the
    /// closed-form CAM at the last stage.
    fn linear_head(&self) -> Option<(Tensor<2>, Tensor<1>)>;

    /// Whether the network L2-normalises its output.
    fn l2_normalize(&self) -> bool;
}

impl Net {
    /// Index of `stage` in [`Staged::stage_names`].
    pub fn stage_index(&self, stage: &str) -> Result<usize, ModelError> {
        let names = self.backbone.stage_names();
        names.iter().position(|s| *s == stage).ok_or_else(|| ModelError::UnknownStage {
            stage: stage.to_string(),
            backbone: self.config.backbone.to_string(),
            available: names.iter().map(|s| s.to_string()).collect(),
        })
    }
}

impl Staged for Net {
    fn stage_names(&self) -> Vec<&'static str> {
        self.backbone.stage_names().to_vec()
    }

    fn forward_to(&self, x: Tensor<4>, stage: &str) -> Result<Tensor<4>, ModelError> {
        let idx = self.stage_index(stage)?;
        Ok(self.backbone.forward_to(x, idx)) // [B, 3, H, W] -> [B, K, h, w]
    }

    fn forward_from(&self, a: Tensor<4>, stage: &str) -> Result<Tensor<2>, ModelError> {
        let idx = self.stage_index(stage)?;
        let last = self.backbone.forward_from(a, idx); // [B, K_last, h', w']
        Ok(self.head.forward_raw(last)) // [B, d]
    }

    fn linear_head(&self) -> Option<(Tensor<2>, Tensor<1>)> {
        Some(self.head.weight_bias())
    }

    fn l2_normalize(&self) -> bool {
        self.head.l2
    }
}
