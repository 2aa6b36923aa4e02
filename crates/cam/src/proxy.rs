//! Proxies: the vectors `p` that targets compare embeddings with (docs/method.md, "Proxies"), and where
//! each one came from.
//!
//! - normalized mean: `p_c = normalize(Σ_{i∈S_c} normalize(e_i))` over the proxy set's images of
//!   class `c`, optionally leaving the query out;
//! - single point: the image's own embedding, as stored (detached by construction);
//! - predicted class: the class mean nearest (cosine) to the image's embedding;
//! - k nearest neighbours: `normalize(Σ_{j∈N_k} normalize(e_j))` over the query's `k` nearest
//!   proxy-set images (cosine), the query excluded;
//! - wrong class: another class's mean (nearest, farthest or seeded random), a sanity check;
//! - classifier row: row `c` of a classifier's weight `W` (the reduction to Grad-CAM).
//!
//! Every [`Proxy`] carries a [`ProxyOrigin`]: its kind, the split its images came from, the class
//! and the image ids used. [`ProxyBatch`] lays out one proxy per (image, column) for the CAM
//! methods.

use std::collections::{BTreeMap, HashMap};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use crate::error::{CamError, Result};
use crate::target::host_norm;

/// A table of embeddings with their image ids and class labels, row-major `[N, d]`.
///
/// Store the network's pre-normalisation output `z` (proxies that need unit vectors normalise
/// rows themselves; the single point proxy is the row as stored).
#[derive(Clone, Debug)]
pub struct Embeddings {
    ids: Vec<u32>,
    labels: Vec<u32>,
    dim: usize,
    data: Vec<f32>,
    split: String,
    by_id: HashMap<u32, usize>,
}

impl Embeddings {
    /// Check and index a table: `data.len() == ids.len() · dim`, one label per id, ids unique,
    /// every value finite (an error names the image).
    pub fn new(
        ids: Vec<u32>,
        labels: Vec<u32>,
        dim: usize,
        data: Vec<f32>,
        split: impl Into<String>,
    ) -> Result<Self> {
        if dim == 0 {
            return Err(CamError::Invalid("embedding dimension is 0".into()));
        }
        if labels.len() != ids.len() || data.len() != ids.len() * dim {
            return Err(CamError::Shape(format!(
                "{} ids, {} labels, {} values for dimension {dim} (expected {})",
                ids.len(),
                labels.len(),
                data.len(),
                ids.len() * dim
            )));
        }
        let mut by_id = HashMap::with_capacity(ids.len());
        for (row, &id) in ids.iter().enumerate() {
            if by_id.insert(id, row).is_some() {
                return Err(CamError::Invalid(format!(
                    "image {id} appears twice in the embeddings"
                )));
            }
            if data[row * dim..(row + 1) * dim].iter().any(|v| !v.is_finite()) {
                return Err(CamError::NonFinite { what: format!("image {id}: embedding") });
            }
        }
        Ok(Embeddings { ids, labels, dim, data, split: split.into(), by_id })
    }

    /// Every row, row-major (`len × dim`).
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    /// Embedding dimension `d`.
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// The split the images came from (recorded in every proxy's origin).
    pub fn split(&self) -> &str {
        &self.split
    }
    /// Image ids, in row order.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }
    /// Class labels, in row order.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
    /// The row of image `id`.
    pub fn row_of(&self, id: u32) -> Option<usize> {
        self.by_id.get(&id).copied()
    }

    /// The table keeping at most `per_class` rows of each class, the first in row order (a
    /// smaller proxy set); `None` keeps every row.
    pub fn first_per_class(&self, per_class: Option<usize>) -> Result<Embeddings> {
        let Some(m) = per_class else { return Ok(self.clone()) };
        let mut seen: BTreeMap<u32, usize> = BTreeMap::new();
        let keep: Vec<usize> = (0..self.len())
            .filter(|&i| {
                let n = seen.entry(self.labels[i]).or_default();
                *n += 1;
                *n <= m
            })
            .collect();
        Embeddings::new(
            keep.iter().map(|&i| self.ids[i]).collect(),
            keep.iter().map(|&i| self.labels[i]).collect(),
            self.dim,
            keep.iter().flat_map(|&i| self.row(i).to_vec()).collect(),
            self.split.clone(),
        )
    }
}

/// What kind of proxy a vector is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyKind {
    /// Normalised mean of a class.
    ClassMean,
    /// The image's own embedding.
    SinglePoint,
    /// The nearest class mean.
    PredictedClass,
    /// Normalised mean of the k nearest neighbours.
    Knn,
    /// Another class's mean.
    WrongClass,
    /// A classifier's weight row.
    ClassifierRow,
    /// Given by the caller.
    Custom,
}

impl ProxyKind {
    /// `normalized-mean`, `single-point`, ... (the names experiment files and tables use)
    pub fn name(self) -> &'static str {
        match self {
            ProxyKind::ClassMean => "normalized-mean",
            ProxyKind::SinglePoint => "single-point",
            ProxyKind::PredictedClass => "predicted-class",
            ProxyKind::Knn => "knn",
            ProxyKind::WrongClass => "wrong-class",
            ProxyKind::ClassifierRow => "classifier-row",
            ProxyKind::Custom => "custom",
        }
    }
}

/// Where a proxy came from.
#[derive(Clone, Debug, PartialEq)]
pub struct ProxyOrigin {
    /// Its kind.
    pub kind: ProxyKind,
    /// The split of the images it was built from (`classifier` for a weight row).
    pub split: String,
    /// The class it stands for, when it stands for one.
    pub class: Option<u32>,
    /// The image ids it was built from (empty for a weight row).
    pub images: Vec<u32>,
}

/// A proxy vector and its origin.
#[derive(Clone, Debug, PartialEq)]
pub struct Proxy {
    /// The vector `p`, dimension `d`.
    pub vector: Vec<f32>,
    /// Where it came from.
    pub origin: ProxyOrigin,
}

/// How to pick the wrong class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WrongClassPick {
    /// The most similar other class (the hardest check).
    Nearest,
    /// The least similar class.
    Farthest,
    /// A uniformly drawn other class, seeded by `seed` and the image id.
    Random {
        /// The seed.
        seed: u64,
    },
}

/// Which proxy to build for a query image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxySpec {
    /// The normalised mean of the image's own class.
    ClassMean {
        /// Leave the query image out of its class mean.
        leave_query_out: bool,
    },
    /// The image's own embedding.
    SinglePoint,
    /// The nearest class mean.
    PredictedClass {
        /// Leave the query image out of its class mean before comparing.
        leave_query_out: bool,
    },
    /// The normalised mean of the `k` nearest proxy-set images (query excluded).
    Knn {
        /// How many neighbours.
        k: usize,
    },
    /// Another class's mean.
    WrongClass {
        /// Which one.
        pick: WrongClassPick,
    },
    /// Row `c` of the bank's classifier: the image's class when `class` is `None`.
    ClassifierRow {
        /// The class, or the image's own.
        class: Option<u32>,
    },
    /// The bank's classifier row of the query's top-scoring class, `argmax_c W_c·z` (classic
    /// Grad-CAM explains the predicted class; it is also the only row there is for an image of a
    /// class the classifier was not trained on).
    TopClassifierRow,
}

impl ProxySpec {
    /// A column name for indexes and galleries (`normalized-mean`, `normalized-mean-loo`, `knn5`,
    /// ...), the name experiment files and tables use.
    pub fn name(&self) -> String {
        match self {
            ProxySpec::ClassMean { leave_query_out: false } => "normalized-mean".into(),
            ProxySpec::ClassMean { leave_query_out: true } => "normalized-mean-loo".into(),
            ProxySpec::SinglePoint => "single-point".into(),
            ProxySpec::PredictedClass { leave_query_out: false } => "predicted-class".into(),
            ProxySpec::PredictedClass { leave_query_out: true } => "predicted-class-loo".into(),
            ProxySpec::Knn { k } => format!("knn{k}"),
            ProxySpec::WrongClass { pick: WrongClassPick::Nearest } => "wrong-class-nearest".into(),
            ProxySpec::WrongClass { pick: WrongClassPick::Farthest } => {
                "wrong-class-farthest".into()
            }
            ProxySpec::WrongClass { pick: WrongClassPick::Random { .. } } => {
                "wrong-class-random".into()
            }
            ProxySpec::ClassifierRow { class: None } => "classifier-row".into(),
            ProxySpec::ClassifierRow { class: Some(c) } => format!("classifier-row{c}"),
            ProxySpec::TopClassifierRow => "classifier-row-top".into(),
        }
    }
}

/// A query image: its id, class and embedding (`z`, as in the bank's table).
#[derive(Clone, Copy, Debug)]
pub struct Query<'a> {
    /// Image id.
    pub id: u32,
    /// Class label.
    pub label: u32,
    /// Its embedding.
    pub embedding: &'a [f32],
}

/// A classifier's weight: `Y = W y + b`, `W` row-major `[C, d]`, row `i` for `classes[i]`.
#[derive(Clone, Debug)]
pub struct Classifier {
    /// The class of each row.
    pub classes: Vec<u32>,
    /// Feature dimension `d`.
    pub dim: usize,
    /// `W`, `[C, d]`.
    pub weight: Vec<f32>,
}

impl Classifier {
    /// The identity on a classifier's `dim` logits, row `i` standing for `classes[i]` (the order
    /// the classifier head was trained with): with it, a classifier-row proxy is the one-hot
    /// vector of a class, and EmbeddingCAM on it is Grad-CAM of that class's score.
    pub fn identity(classes: &[u32], dim: usize) -> Classifier {
        let mut weight = vec![0.0; dim * dim];
        for i in 0..dim {
            weight[i * dim + i] = 1.0;
        }
        Classifier { classes: classes.iter().copied().take(dim).collect(), dim, weight }
    }
}

/// Unit vector in `f64`; `None` when the norm is zero or not finite.
fn unit(v: &[f32]) -> Option<Vec<f64>> {
    let n = host_norm(v);
    (n.is_finite() && n > 0.0).then(|| v.iter().map(|&x| x as f64 / n).collect())
}

/// `f64` vector to a normalised `f32` proxy; `None` when degenerate.
fn normalize_f64(v: &[f64]) -> Option<Vec<f32>> {
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    (n.is_finite() && n > 1e-12).then(|| v.iter().map(|&x| (x / n) as f32).collect())
}

/// Class means of a proxy set, plus the table itself for neighbours and leave-one-out.
#[derive(Clone, Debug)]
pub struct ProxyBank {
    table: Embeddings,
    /// Unit rows of the table, `f64`.
    units: Vec<Vec<f64>>,
    /// Class → (Σ unit rows, member rows).
    classes: BTreeMap<u32, (Vec<f64>, Vec<usize>)>,
    /// Class → its normalised mean.
    means: BTreeMap<u32, Vec<f32>>,
    classifier: Option<Classifier>,
}

impl ProxyBank {
    /// Build the class means `p_c = normalize(Σ_{i∈S_c} normalize(e_i))` of a proxy set (any
    /// embeddings with labels; by default the evaluation split's). An embedding of norm zero is
    /// an error naming the image.
    pub fn new(table: Embeddings) -> Result<Self> {
        let mut units = Vec::with_capacity(table.len());
        let mut classes: BTreeMap<u32, (Vec<f64>, Vec<usize>)> = BTreeMap::new();
        for row in 0..table.len() {
            let u = unit(table.row(row)).ok_or_else(|| {
                CamError::Invalid(format!(
                    "image {}: embedding has norm 0, cannot be normalised",
                    table.ids[row]
                ))
            })?;
            let entry = classes
                .entry(table.labels[row])
                .or_insert_with(|| (vec![0.0; table.dim], Vec::new()));
            entry.0.iter_mut().zip(&u).for_each(|(s, x)| *s += x);
            entry.1.push(row);
            units.push(u);
        }
        let mut means = BTreeMap::new();
        for (&c, (sum, _)) in &classes {
            let m = normalize_f64(sum).ok_or_else(|| CamError::EmptyClass {
                class: c,
                detail: "its unit embeddings sum to zero".into(),
            })?;
            means.insert(c, m);
        }
        Ok(ProxyBank { table, units, classes, means, classifier: None })
    }

    /// Attach a classifier for [`ProxySpec::ClassifierRow`]. Its dimension must be the table's.
    pub fn with_classifier(mut self, classifier: Classifier) -> Result<Self> {
        if classifier.dim != self.table.dim {
            return Err(CamError::ProxyDim {
                what: "classifier weight".into(),
                expected: self.table.dim,
                got: classifier.dim,
            });
        }
        if classifier.weight.len() != classifier.classes.len() * classifier.dim {
            return Err(CamError::Shape(format!(
                "classifier: {} classes × {} dims but {} values",
                classifier.classes.len(),
                classifier.dim,
                classifier.weight.len()
            )));
        }
        self.classifier = Some(classifier);
        Ok(self)
    }

    /// The proxy-set table.
    pub fn table(&self) -> &Embeddings {
        &self.table
    }

    /// The classes with a mean, ascending.
    pub fn classes(&self) -> Vec<u32> {
        self.means.keys().copied().collect()
    }

    /// The mean of class `c`, leaving image `leave_out` out when it is a member.
    pub fn class_mean(&self, c: u32, leave_out: Option<u32>) -> Result<Proxy> {
        let (sum, members) = self.classes.get(&c).ok_or_else(|| CamError::EmptyClass {
            class: c,
            detail: format!("no image of this class in the proxy set (split {})", self.table.split),
        })?;
        let left = leave_out.and_then(|id| self.table.row_of(id)).filter(|r| members.contains(r));
        let images: Vec<u32> =
            members.iter().filter(|&&r| Some(r) != left).map(|&r| self.table.ids[r]).collect();
        if images.is_empty() {
            return Err(CamError::EmptyClass {
                class: c,
                detail: "its only image is the query, which was left out".into(),
            });
        }
        let vector = match left {
            None => self.means[&c].clone(),
            Some(r) => {
                let s: Vec<f64> = sum.iter().zip(&self.units[r]).map(|(s, u)| s - u).collect();
                normalize_f64(&s).ok_or_else(|| CamError::EmptyClass {
                    class: c,
                    detail: "its unit embeddings sum to zero once the query is left out".into(),
                })?
            }
        };
        Ok(Proxy {
            vector,
            origin: ProxyOrigin {
                kind: ProxyKind::ClassMean,
                split: self.table.split.clone(),
                class: Some(c),
                images,
            },
        })
    }

    /// Cosine similarity of the query with every class mean (leave-one-out applied to its class).
    fn class_sims(&self, q: &Query<'_>, leave_query_out: bool) -> Result<Vec<(u32, f64, Proxy)>> {
        let u = self.query_unit(q)?;
        let mut out = Vec::with_capacity(self.means.len());
        for &c in self.means.keys() {
            let proxy = match self.class_mean(c, leave_query_out.then_some(q.id)) {
                Ok(p) => p,
                // A class reduced to nothing by leaving the query out is no candidate.
                Err(CamError::EmptyClass { .. }) if leave_query_out && c == q.label => continue,
                Err(e) => return Err(e),
            };
            let sim: f64 = proxy.vector.iter().zip(&u).map(|(&p, &x)| p as f64 * x).sum();
            out.push((c, sim, proxy));
        }
        Ok(out)
    }

    fn query_unit(&self, q: &Query<'_>) -> Result<Vec<f64>> {
        if q.embedding.len() != self.table.dim {
            return Err(CamError::ProxyDim {
                what: format!("image {}: query embedding", q.id),
                expected: self.table.dim,
                got: q.embedding.len(),
            });
        }
        if q.embedding.iter().any(|v| !v.is_finite()) {
            return Err(CamError::NonFinite { what: format!("image {}: embedding", q.id) });
        }
        unit(q.embedding)
            .ok_or_else(|| CamError::Invalid(format!("image {}: embedding has norm 0", q.id)))
    }

    /// Build the proxy `spec` asks for, for query `q`.
    pub fn resolve(&self, spec: &ProxySpec, q: &Query<'_>) -> Result<Proxy> {
        match *spec {
            ProxySpec::ClassMean { leave_query_out } => {
                self.query_unit(q)?;
                self.class_mean(q.label, leave_query_out.then_some(q.id))
            }
            ProxySpec::SinglePoint => {
                self.query_unit(q)?;
                Ok(Proxy {
                    vector: q.embedding.to_vec(),
                    origin: ProxyOrigin {
                        kind: ProxyKind::SinglePoint,
                        split: self.table.split.clone(),
                        class: Some(q.label),
                        images: vec![q.id],
                    },
                })
            }
            ProxySpec::PredictedClass { leave_query_out } => {
                let sims = self.class_sims(q, leave_query_out)?;
                let best = sims
                    .into_iter()
                    .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
                    .ok_or_else(|| CamError::Invalid("the proxy set has no class".into()))?;
                let mut p = best.2;
                p.origin.kind = ProxyKind::PredictedClass;
                Ok(p)
            }
            ProxySpec::WrongClass { pick } => {
                let sims: Vec<_> =
                    self.class_sims(q, false)?.into_iter().filter(|s| s.0 != q.label).collect();
                if sims.is_empty() {
                    return Err(CamError::Invalid(format!(
                        "image {}: the proxy set has no class other than {}",
                        q.id, q.label
                    )));
                }
                let chosen = match pick {
                    WrongClassPick::Nearest => {
                        sims.into_iter().max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
                    }
                    WrongClassPick::Farthest => {
                        sims.into_iter().min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
                    }
                    WrongClassPick::Random { seed } => {
                        let mut rng = StdRng::seed_from_u64(
                            seed ^ (q.id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                        );
                        let i = rng.random_range(0..sims.len());
                        sims.into_iter().nth(i)
                    }
                };
                let mut p = chosen.ok_or_else(|| CamError::Invalid("no wrong class".into()))?.2;
                p.origin.kind = ProxyKind::WrongClass;
                Ok(p)
            }
            ProxySpec::Knn { k } => self.knn(q, k),
            ProxySpec::ClassifierRow { class } => {
                let cls = self.classifier()?;
                let c = class.unwrap_or(q.label);
                let row = cls.classes.iter().position(|&x| x == c).ok_or_else(|| {
                    CamError::EmptyClass {
                        class: c,
                        detail: "the classifier has no row for this class".into(),
                    }
                })?;
                self.classifier_row(row)
            }
            ProxySpec::TopClassifierRow => {
                let cls = self.classifier()?;
                if q.embedding.len() != cls.dim {
                    return Err(CamError::ProxyDim {
                        what: format!("image {}", q.id),
                        expected: cls.dim,
                        got: q.embedding.len(),
                    });
                }
                // The top class of W·z; ties go to the first row (as argmax does).
                let score = |r: usize| -> f64 {
                    let w = &cls.weight[r * cls.dim..(r + 1) * cls.dim];
                    w.iter().zip(q.embedding).map(|(a, b)| *a as f64 * *b as f64).sum()
                };
                let row = (0..cls.classes.len())
                    .map(|r| (r, score(r)))
                    .fold(None::<(usize, f64)>, |best, (r, s)| match best {
                        Some((_, b)) if b >= s => best,
                        _ => Some((r, s)),
                    })
                    .map(|(r, _)| r)
                    .ok_or_else(|| CamError::Invalid("the classifier has no rows".into()))?;
                self.classifier_row(row)
            }
        }
    }

    fn classifier(&self) -> Result<&Classifier> {
        self.classifier.as_ref().ok_or_else(|| {
            CamError::Invalid(
                "classifier-row proxy asked for, but the bank has no classifier \
                 (ProxyBank::with_classifier)"
                    .into(),
            )
        })
    }

    /// Row `row` of the classifier as a proxy.
    fn classifier_row(&self, row: usize) -> Result<Proxy> {
        let cls = self.classifier()?;
        let c = cls.classes[row];
        let vector = cls.weight[row * cls.dim..(row + 1) * cls.dim].to_vec();
        if vector.iter().any(|v| !v.is_finite()) {
            return Err(CamError::NonFinite { what: format!("class {c}: classifier row") });
        }
        Ok(Proxy {
            vector,
            origin: ProxyOrigin {
                kind: ProxyKind::ClassifierRow,
                split: "classifier".into(),
                class: Some(c),
                images: vec![],
            },
        })
    }

    fn knn(&self, q: &Query<'_>, k: usize) -> Result<Proxy> {
        if k == 0 {
            return Err(CamError::Invalid("k nearest neighbours with k = 0".into()));
        }
        let u = self.query_unit(q)?;
        let mut sims: Vec<(f64, u32, usize)> = (0..self.table.len())
            .filter(|&r| self.table.ids[r] != q.id)
            .map(|r| (self.units[r].iter().zip(&u).map(|(a, b)| a * b).sum(), self.table.ids[r], r))
            .collect();
        if sims.len() < k {
            return Err(CamError::Invalid(format!(
                "image {}: {k} nearest neighbours asked for, the proxy set has {} other images",
                q.id,
                sims.len()
            )));
        }
        sims.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut sum = vec![0.0; self.table.dim];
        for &(_, _, r) in &sims[..k] {
            sum.iter_mut().zip(&self.units[r]).for_each(|(s, x)| *s += x);
        }
        let vector = normalize_f64(&sum).ok_or_else(|| {
            CamError::Invalid(format!(
                "image {}: its neighbours' unit embeddings sum to zero",
                q.id
            ))
        })?;
        Ok(Proxy {
            vector,
            origin: ProxyOrigin {
                kind: ProxyKind::Knn,
                split: self.table.split.clone(),
                class: None,
                images: sims[..k].iter().map(|s| s.1).collect(),
            },
        })
    }

    /// One proxy per (query, spec), in parallel over queries: a [`ProxyBatch`] with one column
    /// per spec.
    pub fn batch(&self, specs: &[ProxySpec], queries: &[Query<'_>]) -> Result<ProxyBatch> {
        let rows: Vec<Vec<Proxy>> = queries
            .par_iter()
            .map(|q| specs.iter().map(|s| self.resolve(s, q)).collect::<Result<Vec<_>>>())
            .collect::<Result<_>>()?;
        ProxyBatch::new(
            queries.iter().map(|q| q.id).collect(),
            specs.iter().map(|s| s.name()).collect(),
            rows,
        )
    }
}

/// One proxy per (image, column) for a batch: the input of every target-driven CAM method.
#[derive(Clone, Debug)]
pub struct ProxyBatch {
    image_ids: Vec<u32>,
    columns: Vec<String>,
    dim: usize,
    /// `[B, P, d]`.
    data: Vec<f32>,
    origins: Vec<ProxyOrigin>,
}

impl ProxyBatch {
    /// Lay out `proxies[b][p]` for images `image_ids[b]` and columns `columns[p]`. Every row must
    /// have one proxy per column, every proxy the same dimension and finite values (errors name
    /// the image and the column).
    pub fn new(
        image_ids: Vec<u32>,
        columns: Vec<String>,
        proxies: Vec<Vec<Proxy>>,
    ) -> Result<Self> {
        if proxies.len() != image_ids.len() {
            return Err(CamError::Shape(format!(
                "{} images but {} rows of proxies",
                image_ids.len(),
                proxies.len()
            )));
        }
        if columns.is_empty() {
            return Err(CamError::Invalid("a proxy batch needs at least one column".into()));
        }
        let dim = proxies.first().and_then(|r| r.first()).map_or(0, |p| p.vector.len());
        let mut data = Vec::with_capacity(image_ids.len() * columns.len() * dim);
        let mut origins = Vec::with_capacity(image_ids.len() * columns.len());
        for (row, &id) in proxies.into_iter().zip(&image_ids) {
            if row.len() != columns.len() {
                return Err(CamError::Shape(format!(
                    "image {id}: {} proxies for {} columns",
                    row.len(),
                    columns.len()
                )));
            }
            for (p, col) in row.into_iter().zip(&columns) {
                if p.vector.len() != dim {
                    return Err(CamError::ProxyDim {
                        what: format!("image {id}, proxy `{col}`"),
                        expected: dim,
                        got: p.vector.len(),
                    });
                }
                if p.vector.iter().any(|v| !v.is_finite()) {
                    return Err(CamError::NonFinite { what: format!("image {id}, proxy `{col}`") });
                }
                data.extend_from_slice(&p.vector);
                origins.push(p.origin);
            }
        }
        Ok(ProxyBatch { image_ids, columns, dim, data, origins })
    }

    /// A batch of caller-given vectors (kind [`ProxyKind::Custom`]): `vectors[b][p]`.
    pub fn from_vectors(
        image_ids: Vec<u32>,
        columns: Vec<String>,
        vectors: Vec<Vec<Vec<f32>>>,
    ) -> Result<Self> {
        let rows = vectors
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|vector| Proxy {
                        vector,
                        origin: ProxyOrigin {
                            kind: ProxyKind::Custom,
                            split: String::new(),
                            class: None,
                            images: vec![],
                        },
                    })
                    .collect()
            })
            .collect();
        ProxyBatch::new(image_ids, columns, rows)
    }

    /// Image ids, one per batch row.
    pub fn image_ids(&self) -> &[u32] {
        &self.image_ids
    }
    /// Column names.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }
    /// Number of images `B`.
    pub fn n_images(&self) -> usize {
        self.image_ids.len()
    }
    /// Number of columns `P`.
    pub fn n_proxies(&self) -> usize {
        self.columns.len()
    }
    /// Proxy dimension `d`.
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// Proxy of image row `b`, column `p`.
    pub fn vector(&self, b: usize, p: usize) -> &[f32] {
        let i = (b * self.columns.len() + p) * self.dim;
        &self.data[i..i + self.dim]
    }
    /// Where the proxy of image row `b`, column `p` came from.
    pub fn origin(&self, b: usize, p: usize) -> &ProxyOrigin {
        &self.origins[b * self.columns.len() + p]
    }
    /// All vectors, `[B, P, d]` row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }
    /// Columns `p0..p1` of every image, `[B, p1 − p0, d]` row-major.
    pub(crate) fn columns_slice(&self, p0: usize, p1: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.n_images() * (p1 - p0) * self.dim);
        for b in 0..self.n_images() {
            for p in p0..p1 {
                out.extend_from_slice(self.vector(b, p));
            }
        }
        out
    }
    /// Whether column `p` holds single-point proxies.
    pub(crate) fn column_is_single_point(&self, p: usize) -> bool {
        (0..self.n_images()).any(|b| self.origin(b, p).kind == ProxyKind::SinglePoint)
    }
}
