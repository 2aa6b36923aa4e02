//! The head shared by every backbone: global average pooling → linear → optional L2
//! normalisation (docs/method.md, "The closed form for GAP → linear (→ L2) heads").

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::Tensor;

use super::Init;

/// `z = W ā + b` on the pooled last-stage features `ā`, then `y = z/‖z‖` when `l2`.
#[derive(Module, Debug)]
pub struct Head {
    /// The linear map. burn stores its weight as `[K_last, d]` (`z = ā · weight + b`); torchvision
    /// and [`Staged::linear_head`](crate::Staged::linear_head) use the transpose `[d, K_last]`.
    pub fc: Linear,
    /// Whether the output is L2-normalised.
    #[module(skip)]
    pub l2: bool,
}

impl Head {
    pub(crate) fn new(init: &mut Init, k_last: usize, d: usize, l2: bool) -> Self {
        Head { fc: init.linear(k_last, d), l2 }
    }

    /// Pooling and the linear map, no normalisation.
    ///
    /// # Shapes
    /// - `a`: `[B, K_last, h, w]` → `[B, d]`
    pub fn forward_raw(&self, a: Tensor<4>) -> Tensor<2> {
        let pooled = global_avg_pool(a); // [B, K_last]
        self.fc.forward(pooled) // [B, d]
    }

    /// `(W [d, K_last], b [d])` with `z = W ā + b`.
    pub fn weight_bias(&self) -> (Tensor<2>, Tensor<1>) {
        let w = self.fc.weight.val().transpose(); // [K_last, d] -> [d, K_last]
        let [_, d] = self.fc.weight.dims();
        let b = match &self.fc.bias {
            Some(b) => b.val(),
            None => Tensor::zeros([d], &w.device()),
        };
        (w, b)
    }
}

/// Mean over the spatial dimensions.
///
/// # Shapes
/// - `a`: `[B, K, h, w]` → `[B, K]`
pub fn global_avg_pool(a: Tensor<4>) -> Tensor<2> {
    let [b, k, _, _] = a.dims();
    a.mean_dim(3).mean_dim(2).reshape([b, k]) // [B, K, 1, 1] -> [B, K]
}

/// Row-wise `z / max(‖z‖, 1e-12)` (as `torch.nn.functional.normalize`).
///
/// # Shapes
/// - `z`: `[B, d]` → `[B, d]`
pub fn l2_normalize(z: Tensor<2>) -> Tensor<2> {
    let norm = z.clone().square().sum_dim(1).sqrt().clamp_min(1e-12); // [B, 1]
    z / norm
}
