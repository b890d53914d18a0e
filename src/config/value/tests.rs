//! Unit tests of the parent module.

use super::*;

fn toml(text: &str) -> toml::Value {
    let table: toml::Table = format!("v = {text}").parse().unwrap();
    table["v"].clone()
}

#[test]
fn numbers_refuse_zero_text_and_the_wrong_toml_type() {
    assert_eq!(NonZeroU64::parse(Raw::Text("12")).unwrap().get(), 12);
    let zero = NonZeroU64::parse(Raw::Text("0")).unwrap_err();
    assert!(
        zero.contains("at least 1") && zero.contains("got 0"),
        "{zero}"
    );
    let text = NonZeroU64::parse(Raw::Text("lots")).unwrap_err();
    assert!(text.contains("\"lots\""), "{text}");
    let string = NonZeroUsize::parse(Raw::Toml(&toml("\"5\""))).unwrap_err();
    assert!(string.contains("string"), "{string}");
    let negative = NonZeroU32::parse(Raw::Toml(&toml("-1"))).unwrap_err();
    assert!(negative.contains("-1"), "{negative}");
    let big = NonZeroU32::parse(Raw::Text("4294967296")).unwrap_err();
    assert!(big.contains("at most 4294967295"), "{big}");
    assert!(NonZeroUsize::parse(Raw::Text("4294967296")).is_err());
    assert_eq!(usize::parse(Raw::Text("0")).unwrap(), 0);
    assert!(usize::parse(Raw::Text("4294967296")).is_err());
    let pool = UpTo::<10>::parse(Raw::Text("11")).err().unwrap();
    assert!(pool.contains("at most 10"), "{pool}");
    assert_eq!(
        NonZeroUsize::from(UpTo::<10>::parse(Raw::Text("10")).unwrap()).get(),
        10
    );
}

#[test]
fn durations_carry_their_unit() {
    assert_eq!(
        Duration::from(Secs::parse(Raw::Text("3")).unwrap()),
        Duration::from_secs(3)
    );
    assert_eq!(
        Duration::from(Millis::parse(Raw::Toml(&toml("250"))).unwrap()),
        Duration::from_millis(250)
    );
    assert!(Secs::parse(Raw::Text("0")).is_err());
    for huge in ["31536001", "18446744073709551615"] {
        let message = Secs::parse(Raw::Text(huge)).err().unwrap();
        assert!(message.contains("at most 31536000"), "{message}");
        assert!(SecsOrZero::parse(Raw::Text(huge)).is_err());
    }
    assert!(Millis::parse(Raw::Text("31536000001")).is_err());
    assert_eq!(
        Duration::from(SecsOrZero::parse(Raw::Text("0")).unwrap()),
        Duration::ZERO
    );
}

#[test]
fn addresses_prefixes_and_filters_are_checked_when_read() {
    assert!(std::net::SocketAddr::parse(Raw::Text("127.0.0.1:0")).is_ok());
    assert!(std::net::SocketAddr::parse(Raw::Text("localhost")).is_err());
    assert!(SubjectPrefix::parse(Raw::Text("shop.chat")).is_ok());
    for bad in ["", "a..b", "a.*", "a b", "x.>"] {
        assert!(SubjectPrefix::parse(Raw::Text(bad)).is_err(), "{bad:?}");
    }
    assert!(LogFilter::parse(Raw::Text("info,shopd::access=warn")).is_ok());
    assert!(LogFilter::parse(Raw::Text("shopd=loud")).is_err());
    assert!(PathBuf::parse(Raw::Text("")).is_err());
    assert!(bool::parse(Raw::Text("yes")).is_err());
}
