//! The crate's one error type. Every message says what is wrong, where (file, line, image id) and,
//! where it helps, what to do.

use std::path::PathBuf;

/// Everything that can go wrong reading or generating a CUB-format dataset.
#[derive(Debug, thiserror::Error)]
pub enum CubError {
    /// A file could not be opened, read or written.
    #[error("{}: {source}{}", path.display(), hint_for(path))]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A line of an index file is malformed (too short, not a number, ...).
    #[error("{}:{line}: {msg}", path.display())]
    Parse {
        /// The index file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line and what it should look like.
        msg: String,
    },
    /// The same id appears twice in one index file.
    #[error("{}:{line}: {what} id {id} appears again (first on line {first_line}); ids must be unique", path.display())]
    DuplicateId {
        /// The index file.
        path: PathBuf,
        /// Line of the repeat.
        line: usize,
        /// Line of the first occurrence.
        first_line: usize,
        /// "image", "class" or "part".
        what: &'static str,
        /// The repeated id.
        id: u32,
    },
    /// An id present in one index file is absent from another.
    #[error("image id {id} is listed in {} but missing from {}; every image needs one line in each index file", present_in.display(), missing_from.display())]
    MissingId {
        /// The image id.
        id: u32,
        /// A file that lists it.
        present_in: PathBuf,
        /// The file that lacks it.
        missing_from: PathBuf,
    },
    /// A reference to a class or part id that the dataset does not define.
    #[error("{}:{line}: {what} id {id} is not defined in {}", path.display(), defined_in.display())]
    UnknownRef {
        /// File with the reference.
        path: PathBuf,
        /// Line of the reference.
        line: usize,
        /// "class" or "part".
        what: &'static str,
        /// The undefined id.
        id: u32,
        /// The file that should define it.
        defined_in: PathBuf,
    },
    /// A bounding box does not fit inside its image.
    #[error("{}:{line}: image id {id}: bounding box x={} y={} w={} h={} lies outside the {width}×{height} image; fix the box (metrics clip it)", path.display(), bbox.x, bbox.y, bbox.w, bbox.h)]
    BoxOutside {
        /// Image id.
        id: u32,
        /// `bounding_boxes.txt`.
        path: PathBuf,
        /// The box's line.
        line: usize,
        /// The offending box.
        bbox: crate::BBox,
        /// Image width.
        width: u32,
        /// Image height.
        height: u32,
    },
    /// An image file listed in `images.txt` cannot be read (missing, unreadable).
    #[error("image id {id}: cannot read {}: {source}; images.txt lists it — restore the file from the archive", path.display())]
    ImageFile {
        /// Image id.
        id: u32,
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// An image file cannot be decoded (truncated, not an image, unsupported format).
    #[error("image id {id}: cannot decode {}: {msg}; the file is damaged or not a JPEG/PNG — re-extract it from the archive", path.display())]
    Decode {
        /// Image id.
        id: u32,
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        msg: String,
    },
    /// A segmentation mask's size differs from its image's.
    #[error("image id {id}: mask {} is {mask_w}×{mask_h} but image {} is {image_w}×{image_h}; the mask belongs to another image or was resized", mask.display(), image.display())]
    MaskSize {
        /// Image id.
        id: u32,
        /// The mask file.
        mask: PathBuf,
        /// Mask width.
        mask_w: u32,
        /// Mask height.
        mask_h: u32,
        /// The image file.
        image: PathBuf,
        /// Image width.
        image_w: u32,
        /// Image height.
        image_h: u32,
    },
    /// The first of several problems (what [`crate::Dataset::open`] returns when many lines are bad).
    #[error("{first} (and {more} more problems; `embcam validate` lists them all)")]
    Several {
        /// The first problem found.
        first: Box<CubError>,
        /// How many more there are.
        more: usize,
    },
    /// A request that cannot be satisfied by this dataset (empty split, bad subset, bad size, ...).
    #[error("{0}")]
    Invalid(String),
}

fn hint_for(path: &std::path::Path) -> &'static str {
    if path.ends_with("images.txt") || path.ends_with("classes.txt") {
        "; is this the CUB_200_2011 folder? (see datasets/README.md)"
    } else {
        ""
    }
}

/// Shorthand for this crate's results.
pub type Result<T, E = CubError> = std::result::Result<T, E>;

/// Attach a path to an I/O error.
pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> CubError {
    let path = path.into();
    move |source| CubError::Io { path, source }
}
