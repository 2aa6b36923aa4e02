//! The words of an experiment file: each a kebab-case serde enum, typed the moment the file is
//! parsed. The name a word is written with in a file is the name it goes by in tables, CSV
//! indexes and `explained.json` ([`Word::name`]); [`super::resolve`] turns the words into the
//! libraries' types. Backbones and triplet mining are the model crate's own enums
//! ([`embcam_model::BackboneKind`], [`embcam_model::loss::Mining`]).

use serde::{Deserialize, Serialize};

/// A word of the vocabulary: its one name.
pub trait Word: Copy {
    /// The name in files and tables.
    fn name(self) -> &'static str;
}

/// An enum whose variants are written as the given names, in files and in tables alike.
macro_rules! vocabulary {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $word:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $word)] $variant,)+
        }

        impl Word for $name {
            fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

vocabulary! {
    /// `dataset.split`.
    SplitName {
        /// First half of the classes trains, the rest is evaluated.
        ClassDisjoint = "class-disjoint",
        /// `train_test_split.txt`.
        Official = "official",
    }
}

vocabulary! {
    /// `dataset.eval_transform`: how an evaluation image becomes a model input.
    EvalTransformName {
        /// The whole image, resized to a square.
        Squash = "squash",
        /// Resize the short side, crop the centre.
        CenterCrop = "center-crop",
    }
}

vocabulary! {
    /// `model.head`.
    Head {
        /// Embedding head, triplet loss.
        Embedding = "embedding",
        /// Softmax classifier over the training classes, cross-entropy.
        Classifier = "classifier",
    }
}

vocabulary! {
    /// `train.optimizer`.
    OptimizerName {
        /// Adam.
        Adam = "adam",
        /// SGD with momentum.
        Sgd = "sgd",
    }
}

vocabulary! {
    /// `train.schedule`.
    ScheduleName {
        /// Cosine decay to 1% of the learning rate.
        Cosine = "cosine",
        /// ×0.1 every third of the epochs.
        Step = "step",
        /// Constant.
        Constant = "constant",
    }
}

vocabulary! {
    /// `cam.methods`: what makes a heatmap.
    MethodName {
        /// Grad-CAM on the proxy score (EmbeddingCAM).
        EmbeddingCam = "embeddingcam",
        /// Grad-CAM++.
        GradCamPlusPlus = "gradcam++",
        /// HiResCAM.
        HiResCam = "hirescam",
        /// XGrad-CAM.
        XGradCam = "xgradcam",
        /// LayerCAM.
        LayerCam = "layercam",
        /// Score-CAM.
        ScoreCam = "scorecam",
        /// Eigen-CAM (target-free).
        EigenCam = "eigencam",
        /// Chen et al. 2020: weights learnt from training triplets, transferred (proxy-free).
        Chen = "chen",
    }
}

vocabulary! {
    /// `cam.proxies`: what the heatmap's score is computed against.
    ProxyName {
        /// The query's class mean of unit embeddings, normalised.
        NormalizedMean = "normalized-mean",
        /// One other image of the query's class.
        SinglePoint = "single-point",
        /// The class mean of the nearest class.
        PredictedClass = "predicted-class",
        /// The mean of the k nearest neighbours.
        Knn = "knn",
        /// The nearest other class's mean.
        WrongClass = "wrong-class",
        /// A classifier's top class, one-hot on its logits (classic Grad-CAM).
        ClassScore = "class-score",
    }
}

vocabulary! {
    /// `cam.target`: the embedding the score is computed on.
    TargetName {
        /// Before L2 normalisation (the paper).
        PreL2 = "pre-l2",
        /// After it.
        PostL2 = "post-l2",
    }
}

vocabulary! {
    /// `eval.baselines`.
    BaselineName {
        /// A centred Gaussian map.
        CenterGaussian = "center-gaussian",
        /// A seeded uniform random map.
        UniformRandom = "uniform-random",
        /// Every method on the untrained network of the same configuration and seed.
        Untrained = "untrained",
    }
}

vocabulary! {
    /// `cam.chen.transfer`: whose weights a test image reuses.
    ChenTransfer {
        /// The nearest training embedding's.
        Nearest = "nearest",
        /// The nearest spherical k-means centre's (mean weights of its members).
        KMeans = "k-means",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The name a word is parsed from is the name it is written and labelled with.
    #[test]
    fn names_round_trip_through_serde() {
        for m in [MethodName::EmbeddingCam, MethodName::GradCamPlusPlus, MethodName::Chen] {
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(json, format!("\"{}\"", m.name()));
            assert_eq!(serde_json::from_str::<MethodName>(&json).unwrap(), m);
        }
        assert_eq!(TargetName::PostL2.to_string(), "post-l2");
    }
}
