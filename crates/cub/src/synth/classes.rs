//! SynthCUB's classes: each is a combination of five attributes (body colour, wing pattern, head
//! colour, beak length, tail shape). Classes come in fine-grained pairs: the second class of a
//! pair is the first with exactly one attribute changed, so the part that carries that attribute
//! (beak, crown, tail or wing) is what tells the two apart. The table is written beside the
//! dataset (`synthcub_classes.csv`) so that evaluations can ask whether a heatmap found it.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::error::{CubError, Result};

/// A named RGB colour.
pub type Colour = (&'static str, [u8; 3]);

/// Body and head colours; the background draws from the same palette, so colour alone does not
/// separate bird from background.
pub const PALETTE: [Colour; 10] = [
    ("Crimson", [196, 30, 58]),
    ("Orange", [232, 128, 30]),
    ("Yellow", [236, 200, 40]),
    ("Olive", [118, 128, 40]),
    ("Green", [46, 139, 60]),
    ("Teal", [20, 130, 140]),
    ("Blue", [40, 80, 190]),
    ("Purple", [120, 60, 150]),
    ("Brown", [120, 80, 45]),
    ("Grey", [130, 130, 130]),
];

/// How the wing is patterned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WingPattern {
    /// One darker shade of the body colour.
    Plain,
    /// Light bars across the wing.
    Barred,
    /// Light spots.
    Spotted,
    /// A contrasting tip.
    Tipped,
}

/// Beak length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Beak {
    /// A stub.
    Short,
    /// About the head's radius.
    Medium,
    /// Nearly twice the head's radius.
    Long,
}

/// Tail shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tail {
    /// A widening wedge.
    Fan,
    /// Two prongs.
    Forked,
    /// A narrow point.
    Pointed,
    /// A rectangle.
    Square,
}

const WINGS: [WingPattern; 4] =
    [WingPattern::Plain, WingPattern::Barred, WingPattern::Spotted, WingPattern::Tipped];
const BEAKS: [Beak; 3] = [Beak::Short, Beak::Medium, Beak::Long];
const TAILS: [Tail; 4] = [Tail::Fan, Tail::Forked, Tail::Pointed, Tail::Square];

/// The attribute that separates a class from its pair, and the CUB part that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Differs {
    /// Beak length: part 2 (beak).
    Beak,
    /// Head colour: part 5 (crown).
    Head,
    /// Tail shape: part 14 (tail).
    Tail,
    /// Wing pattern: part 9 (left wing; the right wing, 13, on birds facing left).
    Wing,
}

impl Differs {
    /// The CUB part id of the distinguishing part.
    pub fn part_id(self) -> u32 {
        match self {
            Differs::Beak => 2,
            Differs::Head => 5,
            Differs::Tail => 14,
            Differs::Wing => 9,
        }
    }
    /// The CUB part id of the distinguishing part on a bird facing left (`facing_left`) or right:
    /// the wing is part 9 on a bird facing right and 13 on one facing left (the visible side).
    pub fn visible_part_id(self, facing_left: bool) -> u32 {
        match self {
            Differs::Wing if facing_left => 13,
            other => other.part_id(),
        }
    }
    fn name(self) -> &'static str {
        match self {
            Differs::Beak => "beak",
            Differs::Head => "crown",
            Differs::Tail => "tail",
            Differs::Wing => "wing",
        }
    }
}

/// One SynthCUB class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Attributes {
    /// Index into [`PALETTE`].
    pub body: usize,
    /// Wing pattern.
    pub wing: WingPattern,
    /// Index into [`PALETTE`].
    pub head: usize,
    /// Beak length.
    pub beak: Beak,
    /// Tail shape.
    pub tail: Tail,
}

/// A class with its name, its nearest class and the part that separates them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthClass {
    /// 1-based class id.
    pub id: u32,
    /// CUB-style name, `001.Crimson_Barred_Bluehead_Longbeak_Forktail`.
    pub name: String,
    /// Its attributes.
    pub attrs: Attributes,
    /// The class that differs from it in one attribute only.
    pub nearest: u32,
    /// What differs.
    pub differs: Differs,
}

impl Attributes {
    fn label(&self) -> String {
        format!(
            "{}_{:?}_{}head_{:?}beak_{:?}tail",
            PALETTE[self.body].0, self.wing, PALETTE[self.head].0, self.beak, self.tail
        )
    }

    fn random(rng: &mut StdRng) -> Self {
        Attributes {
            body: rng.random_range(0..PALETTE.len()),
            wing: WINGS[rng.random_range(0..WINGS.len())],
            head: rng.random_range(0..PALETTE.len()),
            beak: BEAKS[rng.random_range(0..BEAKS.len())],
            tail: TAILS[rng.random_range(0..TAILS.len())],
        }
    }

    /// The same bird with the `what` attribute taken from `other` (the counterfactual: the
    /// discriminative part swapped for the pair class's variant, everything else kept).
    pub fn with_part_of(mut self, what: Differs, other: &Attributes) -> Self {
        match what {
            Differs::Beak => self.beak = other.beak,
            Differs::Head => self.head = other.head,
            Differs::Tail => self.tail = other.tail,
            Differs::Wing => self.wing = other.wing,
        }
        self
    }

    /// The same bird with the `what` attribute changed to a different random value.
    fn with_changed(mut self, what: Differs, rng: &mut StdRng) -> Self {
        fn other<T: Copy + PartialEq>(all: &[T], cur: T, rng: &mut StdRng) -> T {
            let rest: Vec<T> = all.iter().copied().filter(|&v| v != cur).collect();
            rest[rng.random_range(0..rest.len())]
        }
        match what {
            Differs::Beak => self.beak = other(&BEAKS, self.beak, rng),
            Differs::Head => {
                let heads: Vec<usize> = (0..PALETTE.len()).collect();
                self.head = other(&heads, self.head, rng);
            }
            Differs::Tail => self.tail = other(&TAILS, self.tail, rng),
            Differs::Wing => self.wing = other(&WINGS, self.wing, rng),
        }
        self
    }
}

/// Make `n` distinct classes from a seed: pairs (2k−1, 2k) differ in `pair_differences` attributes
/// (1 to 4); the first of them, the pair's discriminative part, cycles through beak, head, tail
/// and wing. With odd `n` the last class is paired with its closest class.
pub fn make_classes(n: u32, pair_differences: u32, seed: u64) -> Result<Vec<SynthClass>> {
    if !(2..=999).contains(&n) {
        return Err(CubError::Invalid(format!("SynthCUB needs 2 to 999 classes, asked for {n}")));
    }
    if !(1..=4).contains(&pair_differences) {
        return Err(CubError::Invalid(format!(
            "pairs can differ in 1 to 4 attributes, asked for {pair_differences}"
        )));
    }
    let mut rng = StdRng::seed_from_u64(seed ^ 0xC1A55E5);
    let mut order = [Differs::Beak, Differs::Head, Differs::Tail, Differs::Wing];
    order.shuffle(&mut rng);
    let mut seen = HashSet::new();
    let mut attrs = Vec::with_capacity(n as usize);
    let mut differs = Vec::with_capacity(n as usize);
    while attrs.len() < n as usize {
        let pair = attrs.len() / 2;
        let what = order[pair % order.len()];
        let a = Attributes::random(&mut rng);
        if seen.contains(&a) {
            continue;
        }
        let mut b = a.with_changed(what, &mut rng);
        // Further differences, in the cycle's order after the discriminative one.
        let at = order.iter().position(|&d| d == what).unwrap_or(0);
        for extra in 1..pair_differences as usize {
            b = b.with_changed(order[(at + extra) % order.len()], &mut rng);
        }
        if seen.contains(&b) {
            continue;
        }
        seen.insert(a);
        attrs.push(a);
        differs.push(what);
        if attrs.len() < n as usize {
            seen.insert(b);
            attrs.push(b);
            differs.push(what);
        }
    }
    Ok((0..n)
        .map(|k| {
            let k = k as usize;
            let nearest = if k.is_multiple_of(2) { k + 1 } else { k - 1 };
            // An unpaired last class: its nearest class by attributes is found below.
            let nearest = if nearest < n as usize { nearest } else { closest(&attrs, k) };
            let a = attrs[k];
            SynthClass {
                id: k as u32 + 1,
                name: format!("{:03}.{}", k + 1, a.label()),
                attrs: a,
                nearest: nearest as u32 + 1,
                differs: if nearest / 2 == k / 2 {
                    differs[k]
                } else {
                    first_difference(&a, &attrs[nearest]).unwrap_or(differs[k])
                },
            }
        })
        .collect())
}

fn diff_list(a: &Attributes, b: &Attributes) -> Vec<Differs> {
    let mut d = Vec::new();
    if a.beak != b.beak {
        d.push(Differs::Beak);
    }
    if a.head != b.head {
        d.push(Differs::Head);
    }
    if a.tail != b.tail {
        d.push(Differs::Tail);
    }
    if a.wing != b.wing {
        d.push(Differs::Wing);
    }
    d
}

fn first_difference(a: &Attributes, b: &Attributes) -> Option<Differs> {
    diff_list(a, b).first().copied()
}

fn closest(attrs: &[Attributes], k: usize) -> usize {
    (0..attrs.len())
        .filter(|&j| j != k)
        .min_by_key(|&j| {
            diff_list(&attrs[k], &attrs[j]).len() + (attrs[k].body != attrs[j].body) as usize
        })
        .unwrap_or(0)
}

/// The file name of the class table, written in the `CUB_200_2011` folder.
pub const CLASS_TABLE: &str = "synthcub_classes.csv";

/// The class table as CSV: `class_id,class_name,body,wing,head,beak,tail,nearest_class,
/// discriminative_part,discriminative_part_id`.
pub fn class_table_csv(classes: &[SynthClass]) -> String {
    let mut s = String::from(
        "class_id,class_name,body,wing,head,beak,tail,nearest_class,discriminative_part,discriminative_part_id\n",
    );
    for c in classes {
        let a = &c.attrs;
        let _ = writeln!(
            s,
            "{},{},{},{:?},{},{:?},{:?},{},{},{}",
            c.id,
            c.name,
            PALETTE[a.body].0,
            a.wing,
            PALETTE[a.head].0,
            a.beak,
            a.tail,
            c.nearest,
            c.differs.name(),
            c.differs.part_id()
        );
    }
    s
}

/// Read the discriminative part id of every class from a SynthCUB class table:
/// `(class_id, part_id)` pairs. Returns `Ok(None)` when the dataset has no table (real CUB).
pub fn read_discriminative_parts(root: &Path) -> Result<Option<Vec<(u32, u32)>>> {
    let path = root.join(CLASS_TABLE);
    if !path.exists() {
        return Ok(None);
    }
    let mut out = Vec::new();
    // The first line is the header.
    for (line, text) in crate::dataset::read_lines(&path)?.into_iter().skip(1) {
        let text = text?;
        let f: Vec<&str> = text.split(',').collect();
        let bad = |msg: String| CubError::Parse { path: path.clone(), line, msg };
        if f.len() != 10 {
            return Err(bad(format!("expected 10 comma-separated fields, found {}", f.len())));
        }
        let num = |s: &str| s.parse::<u32>().map_err(|_| bad(format!("`{s}` is not a number")));
        out.push((num(f[0])?, num(f[9])?));
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_differ_in_exactly_one_attribute_and_all_are_distinct() {
        for n in [2, 7, 20, 200] {
            let classes = make_classes(n, 1, 42).expect("valid n");
            let set: HashSet<_> = classes.iter().map(|c| c.attrs).collect();
            assert_eq!(set.len(), n as usize);
            for c in classes.iter().filter(|c| c.id % 2 == 1 && c.id < n) {
                let sib = &classes[c.id as usize];
                assert_eq!(c.nearest, sib.id);
                assert_eq!(diff_list(&c.attrs, &sib.attrs), vec![c.differs]);
                assert_eq!(c.attrs.body, sib.attrs.body);
            }
        }
        assert!(make_classes(1, 1, 0).is_err());
        assert!(make_classes(4, 5, 0).is_err());
    }

    #[test]
    fn coarser_pairs_differ_in_as_many_attributes_led_by_the_discriminative_one() {
        for d in 2..=4 {
            let classes = make_classes(40, d, 7).expect("valid");
            for c in classes.iter().filter(|c| c.id % 2 == 1) {
                let sib = &classes[c.id as usize];
                let diff = diff_list(&c.attrs, &sib.attrs);
                assert_eq!(diff.len(), d as usize, "{} vs {}", c.name, sib.name);
                assert!(diff.contains(&c.differs));
                assert_eq!(c.differs, sib.differs);
            }
        }
    }
}
