//! Random, readable user names for chat members: `brave-otter-4821`.

use rand::RngExt;
use rand::seq::IndexedRandom;

/// Lower-case ASCII words only, so a name never has spaces, never needs
/// escaping and never contains the ` :: ` separator of chat lines.
const ADJECTIVES: &[&str] = &[
    "agile", "amber", "bold", "brave", "bright", "calm", "clever", "cosy", "crisp", "curious",
    "daring", "eager", "fancy", "fast", "fierce", "gentle", "glad", "golden", "happy", "hardy",
    "honest", "humble", "jolly", "keen", "kind", "lively", "lucky", "merry", "mighty", "misty",
    "modest", "nimble", "noble", "polite", "proud", "quick", "quiet", "rapid", "rosy", "rusty",
    "shy", "silent", "silver", "sleepy", "sly", "smart", "snowy", "sunny", "swift", "tidy", "tiny",
    "vivid", "warm", "wild", "wise", "witty", "young", "zesty",
];

/// See [`ADJECTIVES`].
const ANIMALS: &[&str] = &[
    "badger", "bat", "bear", "beaver", "bison", "camel", "cat", "cobra", "crane", "crow", "deer",
    "dingo", "dolphin", "eagle", "falcon", "ferret", "finch", "fox", "gecko", "goose", "hare",
    "hawk", "heron", "ibis", "jackal", "koala", "lemur", "lion", "llama", "lynx", "marten", "mole",
    "moose", "newt", "otter", "owl", "panda", "parrot", "puffin", "quail", "rabbit", "raven",
    "seal", "shrew", "sloth", "stoat", "swan", "tapir", "tiger", "toad", "trout", "turtle",
    "viper", "walrus", "weasel", "whale", "wolf", "wombat", "yak", "zebra",
];

/// A fresh name such as `brave-otter-4821`: adjective, animal, four digits.
///
/// About 31 million combinations; the room registry still re-draws on the
/// rare clash inside one room so that names there stay distinct.
pub(crate) fn random_name() -> String {
    // `ThreadRng` is not `Send`: take it, use it and drop it right here,
    // never across an `.await`.
    let mut rng = rand::rng();
    let adjective = ADJECTIVES.choose(&mut rng).copied().unwrap_or("brave");
    let animal = ANIMALS.choose(&mut rng).copied().unwrap_or("otter");
    let number: u16 = rng.random_range(1000..=9999);
    format!("{adjective}-{animal}-{number}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_adjective_animal_and_four_digits() {
        for _ in 0..1000 {
            let name = random_name();
            let parts: Vec<&str> = name.split('-').collect();
            assert_eq!(parts.len(), 3, "{name}");
            assert!(ADJECTIVES.contains(&parts[0]), "{name}");
            assert!(ANIMALS.contains(&parts[1]), "{name}");
            assert_eq!(parts[2].len(), 4, "{name}");
            assert!(parts[2].bytes().all(|b| b.is_ascii_digit()), "{name}");
            assert_eq!(name.trim(), name);
        }
    }

    #[test]
    fn word_lists_hold_single_lower_case_words() {
        for word in ADJECTIVES.iter().chain(ANIMALS) {
            assert!(!word.is_empty());
            assert!(word.bytes().all(|b| b.is_ascii_lowercase()), "{word}");
        }
    }

    #[test]
    fn names_vary() {
        let names: std::collections::HashSet<String> = (0..100).map(|_| random_name()).collect();
        assert!(
            names.len() > 90,
            "only {} distinct names in 100",
            names.len()
        );
    }
}
