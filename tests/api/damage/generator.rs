//! The damage generator: copies of a stopped store's directory, and seeded
//! random damage to one of sled's files.

use std::path::{Path, PathBuf};

/// Copies directory `from` (with its subdirectories) to `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// splitmix64: a seeded generator, so a failing seed reproduces anywhere.
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Damages one of sled's files at random; says what it did.
pub fn damage(sled_dir: &Path, rng: &mut Rng) -> String {
    let mut files = vec![sled_dir.join("db")];
    let mut others: Vec<_> = walk(sled_dir)
        .into_iter()
        .filter(|f| !f.ends_with("db"))
        .collect();
    others.sort();
    // Mostly the log, where the records are.
    if !others.is_empty() && rng.below(4) == 0 {
        files = others;
    }
    let file = &files[rng.below(files.len() as u64) as usize];
    let mut bytes = std::fs::read(file).unwrap();
    let len = bytes.len() as u64;
    let what = match rng.below(3) {
        0 => {
            let flips = 1 + rng.below(8);
            for _ in 0..flips {
                let at = rng.below(len) as usize;
                bytes[at] ^= 1 << rng.below(8);
            }
            format!("{flips} bits flipped")
        }
        1 => {
            let most = if rng.below(2) == 0 { 200.min(len) } else { len };
            let cut = 1 + rng.below(most);
            bytes.truncate((len - cut) as usize);
            format!("{cut} bytes cut off the end")
        }
        _ => {
            let at = rng.below(len);
            let zeroed = (1 + rng.below(8192)).min(len - at);
            bytes[at as usize..(at + zeroed) as usize].fill(0);
            format!("{zeroed} bytes zeroed at {at}")
        }
    };
    std::fs::write(file, bytes).unwrap();
    format!(
        "{} of {}",
        what,
        file.strip_prefix(sled_dir).unwrap().display()
    )
}

/// The non-empty files under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else if std::fs::metadata(&path).unwrap().len() > 0 {
            files.push(path);
        }
    }
    files
}
